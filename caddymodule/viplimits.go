package caddymodule

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// vipLimits are the VIP proxy's bounds, defaults applied; math.MaxInt
// means none.
type vipLimits struct {
	listeners   int
	perListener int64
	conns       int64
	idle        time.Duration // 0: never
	header      time.Duration // per-request ports: time to send headers
}

func newVIPLimits(cfg *VIPProxyConfig) vipLimits {
	l := vipLimits{
		listeners:   limit(cfg.MaxListeners, DefaultMaxVIPListeners),
		perListener: int64(limit(cfg.MaxConnsPerListener, DefaultMaxConnsPerVIP)),
		conns:       int64(limit(cfg.MaxConns, DefaultMaxVIPConns)),
		idle:        time.Duration(cfg.IdleTimeout),
		header:      time.Duration(cfg.HeaderTimeout),
	}
	if l.header <= 0 {
		l.header = DefaultVIPHeaderTimeout
	}
	switch {
	case l.idle == 0:
		l.idle = DefaultVIPIdleTimeout
	case l.idle < 0:
		l.idle = 0
	}
	return l
}

// limitMetrics count what the VIP proxy's limits turn away.
type limitMetrics struct {
	skippedGauge prometheus.Gauge
	overload     prometheus.Counter
	idleClosed   prometheus.Counter
}

func newLimitMetrics() limitMetrics {
	return limitMetrics{
		skippedGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "listeners_skipped",
			Help: "Service VIP:ports not listened on because max_listeners are open.",
		}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "overload_refused_total",
			Help: "Connections reset at once because max_conns_per_listener or max_conns were proxied.",
		}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "netsel", Subsystem: "vip", Name: "idle_closed_total",
			Help: "Proxied connections closed after idle_timeout without a byte either way.",
		}),
	}
}

// skip records that ap of service name is not listened on because
// MaxListeners are open; run opens it when others close.
func (vp *vipProxy) skip(ap netip.AddrPort, name string) {
	vp.skipped[ap] = name
	vp.noteSkip(ap, name)
}

func (vp *vipProxy) unskip(ap netip.AddrPort) {
	delete(vp.skipped, ap)
	vp.setSkipped()
}

// noteSkip logs, once until none is skipped, that ap of service name (TCP
// or UDP) is skipped, and counts the skipped.
func (vp *vipProxy) noteSkip(ap netip.AddrPort, name string) {
	if !vp.skipNote {
		vp.skipNote = true
		vp.logger.Warn("max_listeners VIP listeners are open; further service VIP:ports are not listened on until others close",
			zap.Int("max_listeners", vp.lim.listeners), zap.String("service", name), zap.Stringer("addr", ap))
	}
	vp.setSkipped()
}

// setSkipped counts the skipped VIP:ports, TCP and UDP.
func (vp *vipProxy) setSkipped() {
	n := len(vp.skipped) + vp.udp.nSkipped
	vp.skippedGauge.Set(float64(n))
	if n == 0 {
		vp.skipNote = false
	}
}

// openListeners counts the VIP:port listeners open, TCP and UDP, for
// MaxListeners.
func (vp *vipProxy) openListeners() int {
	return len(vp.listeners) + len(vp.udp.sockets)
}

// admit counts a new connection on l, or reports false when l or the proxy
// already carry their limit.
func (vp *vipProxy) admit(l *vipListener) bool {
	if l.conns.Add(1) > vp.lim.perListener {
		l.conns.Add(-1)
		return false
	}
	if vp.conns.Add(1) > vp.lim.conns {
		vp.conns.Add(-1)
		l.conns.Add(-1)
		return false
	}
	return true
}

// done uncounts a connection admit counted.
func (vp *vipProxy) done(l *vipListener) {
	l.conns.Add(-1)
	vp.conns.Add(-1)
}

// pipe proxies between down and up, closing both once neither carried a
// byte for the idle timeout. Each direction copies with io.Copy (splice(2)
// between TCP connections) under a read deadline of a quarter of the
// timeout, so it notes its activity at least that often; a direction whose
// read times out closes the connection when nothing moved either way for
// the timeout (plus that quarter: the other direction's latest bytes may be
// that late to be noted).
func (vp *vipProxy) pipe(down, up net.Conn) {
	idle := vp.lim.idle
	if idle <= 0 {
		pipe(down, up, down)
		return
	}
	tick := idle / 4
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var expired atomic.Bool
	copyDir := func(dst, src net.Conn) error {
		for {
			src.SetReadDeadline(time.Now().Add(tick)) //nolint:errcheck // a closed conn fails the copy
			n, err := io.Copy(dst, src)
			now := time.Now()
			if n > 0 {
				last.Store(now.UnixNano())
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			if now.Sub(time.Unix(0, last.Load())) >= idle+tick {
				if expired.CompareAndSwap(false, true) {
					vp.idleClosed.Inc()
				}
				return errIdle
			}
		}
	}
	pipeFunc(down, up, func() error { return copyDir(up, down) }, func() error { return copyDir(down, up) })
}

// errIdle ends a proxied connection idle for the idle timeout.
var errIdle = errors.New("idle timeout")
