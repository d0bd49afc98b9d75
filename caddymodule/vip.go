package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/vipnet"
)

// vipProxy keeps one TCP listener on VIP:port for every TCP port of every
// service that has a VIP, following the catalog: a listener opens when a
// service appears and closes when it goes, with no Caddy reload, and without
// touching connections already proxied. A listener whose service has no
// healthy instance accepts and resets at once, so clients fail fast. UDP
// ports get a socket and per-client flows instead: see udpVIPs.
type vipProxy struct {
	app    *App
	ctx    caddy.Context
	fwd    *forwarder
	retry  time.Duration
	logger *zap.Logger

	// Owned by run.
	listeners map[netip.AddrPort]*vipListener
	failed    map[netip.AddrPort]string // VIP:port that could not be bound -> service
	skipped   map[netip.AddrPort]string // VIP:port not opened for MaxListeners -> service

	udp      *udpVIPs // the UDP sockets, beside these TCP listeners
	lim      vipLimits
	conns    atomic.Int64 // connections proxied now, all listeners
	skipNote bool         // the skip of listeners is logged; reset when none is skipped

	open       prometheus.Gauge
	bindErrors *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	refused    *prometheus.CounterVec
	limitMetrics
}

// vipListener serves one VIP:port of one service.
type vipListener struct {
	service string
	port    int
	ln      net.Listener
	rr      atomic.Uint64
	done    chan struct{}
	conns   atomic.Int64 // connections proxied now

	accepted, refused prometheus.Counter
}

func newVIPProxy(ctx caddy.Context, app *App, cfg *VIPProxyConfig, logger *zap.Logger) (*vipProxy, error) {
	retry := time.Duration(cfg.BindRetry)
	if retry <= 0 {
		retry = defaultBindRetry
	}
	vp := &vipProxy{
		app:       app,
		ctx:       ctx,
		fwd:       newForwarder(time.Duration(cfg.DialTimeout), cfg.Tries, cfg.Policy, &app.open),
		retry:     retry,
		logger:    logger,
		listeners: map[netip.AddrPort]*vipListener{},
		failed:    map[netip.AddrPort]string{},
		skipped:   map[netip.AddrPort]string{},
		lim:       newVIPLimits(cfg),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "listeners",
			Help: "VIP:port listeners open.",
		}),
		bindErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "bind_errors_total",
			Help: "Failed attempts to listen on a service VIP:port.",
		}, []string{"service"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "connections_total",
			Help: "Connections accepted on VIP listeners and proxied to an instance.",
		}, []string{"service"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "refused_total",
			Help: "Connections reset because no instance could be reached.",
		}, []string{"service"}),
	}
	vp.limitMetrics = newLimitMetrics()
	vp.udp = newUDPVIPs(vp, cfg)
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range append([]prometheus.Collector{vp.open, vp.bindErrors, vp.accepted, vp.refused, vp.skippedGauge, vp.overload, vp.idleClosed}, vp.udp.collectors()...) {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return vp, nil
}

// run reconciles the listeners with every new snapshot until ctx ends, then
// closes them all.
func (vp *vipProxy) run(ctx context.Context) {
	defer vp.closeAll()
	defer vp.udp.closeAll()
	ix := vp.app.index
	retry := time.NewTicker(vp.retry)
	defer retry.Stop()
	var old *catalog.Snapshot
	for {
		snap := ix.Snapshot()
		if snap.Synced() {
			vp.reconcile(old, snap)
			vp.udp.reconcile(old, snap)
			old = snap
		}
		select {
		case <-ctx.Done():
			return
		case <-snap.Stale():
		case <-retry.C:
			if old != nil && (len(vp.failed) > 0 || len(vp.skipped) > 0) {
				vp.retryFailed(old)
			}
			if old != nil && len(vp.udp.pending) > 0 {
				vp.udp.retryFailed(old)
			}
		}
	}
}

// reconcile opens and closes listeners for the services that changed
// between old and snap; old is nil on the first pass.
func (vp *vipProxy) reconcile(old, snap *catalog.Snapshot) {
	names := changedNames(old, snap)
	if len(names) == 0 {
		return
	}
	// What each service holds now, gathered once per reconcile.
	held := map[string][]netip.AddrPort{}
	for ap, l := range vp.listeners {
		held[l.service] = append(held[l.service], ap)
	}
	for ap, svc := range vp.failed {
		held[svc] = append(held[svc], ap)
	}
	for ap, svc := range vp.skipped {
		held[svc] = append(held[svc], ap)
	}
	for _, name := range names {
		want := wantedPorts(snap, name)
		for _, ap := range held[name] {
			if want[ap] {
				continue
			}
			if l, ok := vp.listeners[ap]; ok && l.service == name {
				vp.close(ap, l)
			}
			if vp.failed[ap] == name {
				delete(vp.failed, ap)
			}
			if vp.skipped[ap] == name {
				vp.unskip(ap)
			}
		}
		for ap := range want {
			if l, ok := vp.listeners[ap]; ok && l.service == name {
				continue
			}
			vp.listen(ap, name)
		}
	}
}

// changedNames returns the services that changed between old and snap,
// or every service of snap when old is nil.
func changedNames(old, snap *catalog.Snapshot) []string {
	if old == nil {
		return snap.Names()
	}
	return catalog.Changed(old, snap)
}

// wantedPorts returns the VIP:port pairs service name should listen on.
func wantedPorts(snap *catalog.Snapshot, name string) map[netip.AddrPort]bool {
	e, ok := snap.Service(name)
	if !ok || e.Service == nil || !e.Service.VIP.IsValid() {
		return nil
	}
	want := make(map[netip.AddrPort]bool, len(e.Service.Ports))
	for _, p := range e.Service.Ports {
		if p.Transport() == catalog.ProtocolTCP {
			want[netip.AddrPortFrom(e.Service.VIP, uint16(p.Port))] = true
		}
	}
	return want
}

func (vp *vipProxy) retryFailed(snap *catalog.Snapshot) {
	for ap, name := range vp.failed {
		if wantedPorts(snap, name)[ap] {
			vp.listen(ap, name)
		} else {
			delete(vp.failed, ap)
		}
	}
	for ap, name := range vp.skipped {
		if vp.openListeners() >= vp.lim.listeners {
			return
		}
		if wantedPorts(snap, name)[ap] {
			vp.listen(ap, name)
		} else {
			vp.unskip(ap)
		}
	}
}

// listen opens ap for service name. A failure is logged once and counted on
// every attempt; run tries again every bind_retry.
func (vp *vipProxy) listen(ap netip.AddrPort, name string) {
	if l, ok := vp.listeners[ap]; ok { // the VIP:port moved to another service
		vp.close(ap, l)
	} else if vp.openListeners() >= vp.lim.listeners {
		vp.skip(ap, name)
		return
	}
	addr := caddy.NetworkAddress{Network: "tcp", Host: ap.Addr().String(), StartPort: uint(ap.Port()), EndPort: uint(ap.Port())}
	lnAny, err := addr.Listen(vp.ctx, 0, net.ListenConfig{Control: vipnet.FreeBind})
	if err == nil {
		if ln, ok := lnAny.(net.Listener); ok {
			l := &vipListener{
				service: name, port: int(ap.Port()), ln: ln, done: make(chan struct{}),
				accepted: vp.accepted.WithLabelValues(name),
				refused:  vp.refused.WithLabelValues(name),
			}
			vp.listeners[ap] = l
			vp.open.Inc()
			if _, was := vp.skipped[ap]; was {
				vp.unskip(ap)
			}
			if _, was := vp.failed[ap]; was {
				vp.logger.Info("VIP listener bound after earlier failure", zap.String("service", name), zap.Stringer("addr", ap))
				delete(vp.failed, ap)
			}
			vp.logger.Debug("VIP listener open", zap.String("service", name), zap.Stringer("addr", ap))
			go vp.start(l)
			return
		}
		err = fmt.Errorf("listener is %T, not a net.Listener", lnAny)
	}
	vp.bindErrors.WithLabelValues(name).Inc()
	if _, was := vp.failed[ap]; !was {
		vp.logger.Error("cannot listen on service VIP; other services keep serving, retrying",
			zap.String("service", name), zap.Stringer("addr", ap),
			zap.Duration("retry", vp.retry), zap.Error(err))
	}
	vp.failed[ap] = name
}

func (vp *vipProxy) close(ap netip.AddrPort, l *vipListener) {
	l.ln.Close()
	<-l.done
	delete(vp.listeners, ap)
	vp.open.Dec()
	vp.logger.Debug("VIP listener closed", zap.String("service", l.service), zap.Stringer("addr", ap))
	vp.forgetMetrics(l.service)
}

// forgetMetrics drops the per-service series of a service that has no
// listener left and no failed bind pending, so deleted services do not
// accumulate series.
func (vp *vipProxy) forgetMetrics(service string) {
	for _, other := range vp.listeners {
		if other.service == service {
			return
		}
	}
	for _, name := range vp.failed {
		if name == service {
			return
		}
	}
	for _, name := range vp.skipped {
		if name == service {
			return
		}
	}
	vp.accepted.DeleteLabelValues(service)
	vp.refused.DeleteLabelValues(service)
	vp.bindErrors.DeleteLabelValues(service)
}

func (vp *vipProxy) closeAll() {
	for ap, l := range vp.listeners {
		vp.close(ap, l)
	}
}

// serve accepts connections on l until it is closed.
func (vp *vipProxy) serve(l *vipListener) {
	defer close(l.done)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			vp.logger.Warn("VIP accept failed; retrying", zap.String("service", l.service), zap.Error(err), zap.Duration("after", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !vp.admit(l) {
			vp.overload.Inc()
			refuse(c)
			continue
		}
		go func() {
			defer vp.done(l)
			vp.handle(l, c)
		}()
	}
}

// handle proxies one accepted connection to an instance of l's service.
func (vp *vipProxy) handle(l *vipListener, c net.Conn) {
	v := vp.app.view(l.service)
	var port string
	if v != nil && v.entry.Service != nil {
		port, _ = portName(v.entry.Service, l.port)
	}
	if port == "" {
		l.refused.Inc()
		refuse(c)
		return
	}
	up, release, err := vp.fwd.dial(context.Background(), v, port, &l.rr)
	if err != nil {
		l.refused.Inc()
		if err != errNoInstance {
			vp.logger.Warn("no instance reachable; resetting client connection",
				zap.String("service", l.service), zap.String("port", port+"/"+strconv.Itoa(l.port)), zap.Error(err))
		}
		refuse(c)
		return
	}
	defer release()
	l.accepted.Inc()
	vp.pipe(c, up)
}
