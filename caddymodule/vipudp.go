package caddymodule

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/vipnet"
)

// DefaultUDPIdleTimeout closes a UDP flow through a VIP that carried no
// datagram either way for that long. It is Linux conntrack's
// nf_conntrack_udp_timeout: NATs and firewalls on the way forget a quiet
// UDP flow after as long, so clients that keep one open already send more
// often (WireGuard's keepalive is 25s), while a flow per DNS-like query is
// freed soon. See udpVIPs.
const DefaultUDPIdleTimeout = 30 * time.Second

// udpVIPs keeps one UDP socket on VIP:port for every UDP port of every
// service that has a VIP, following the catalog as the TCP listeners do:
// reconciled on the same snapshots by vipProxy.run, binds that fail logged
// once and retried every bind_retry, counted in the same max_listeners.
// Keyed apart from the TCP listeners, so a VIP:port may have both.
//
// A datagram from a client address with no flow opens one: an instance is
// chosen as for a TCP connection (health, dial policy, locality, weights
// or least_conn, through the same forwarder) and gets a UDP socket of the
// flow's own, connected to it. The client's datagrams go out on it, the
// instance's answers come back to the client from VIP:port. A flow counts
// as one proxied connection towards max_conns_per_listener (of its UDP
// socket) and max_conns; a new client past either has its datagrams
// dropped (counted) until a flow closes. A flow closes after
// udp_idle_timeout with no datagram either way; when its instance leaves
// the service's usable instances (deregistered, critical, in maintenance,
// failing the app's checks, refused by the dial policy), at once when the
// catalog says so and on the client's next datagram when the app's checks
// do, and the client's next datagram opens a flow to another; when the
// instance answers ICMP port unreachable; and with its socket. A draining
// instance gets no new flow but keeps its own, as TCP connections stay
// open through a drain. A flow holds one descriptor and one goroutine; no
// goroutine is started per datagram, and a 64 KiB buffer is held only
// while a datagram moves (see udpSock).
type udpVIPs struct {
	vp   *vipProxy
	idle time.Duration

	// Owned by vipProxy.run.
	sockets  map[netip.AddrPort]*udpListener
	pending  map[netip.AddrPort]udpPending // not bound: failed or skipped
	nSkipped int

	udpMetrics
}

// udpPending is a UDP VIP:port not bound yet.
type udpPending struct {
	service string
	skipped bool // for max_listeners, else the bind failed
}

// udpListener is the UDP socket of one VIP:port of one service.
type udpListener struct {
	service string
	port    int
	closer  net.PacketConn // as caddy returned it; closing it closes sock's
	sock    udpSock
	rr      atomic.Uint64
	served  chan struct{} // closed when serve returns

	mu    sync.Mutex
	flows map[netip.AddrPort]*udpFlow
	wg    sync.WaitGroup // flow goroutines

	// Owned by serve: which instances flows may stay with.
	usableView *view
	usable     map[string]string

	m udpServiceMetrics
}

func newUDPVIPs(vp *vipProxy, cfg *VIPProxyConfig) *udpVIPs {
	idle := time.Duration(cfg.UDPIdleTimeout)
	if idle <= 0 {
		idle = DefaultUDPIdleTimeout
	}
	return &udpVIPs{
		vp:         vp,
		idle:       idle,
		sockets:    map[netip.AddrPort]*udpListener{},
		pending:    map[netip.AddrPort]udpPending{},
		udpMetrics: newUDPMetrics(),
	}
}

// wantedUDPPorts returns the VIP:port pairs service name should have a UDP
// socket on.
func wantedUDPPorts(snap *catalog.Snapshot, name string) map[netip.AddrPort]bool {
	e, ok := snap.Service(name)
	if !ok || e.Service == nil || !e.Service.VIP.IsValid() {
		return nil
	}
	want := map[netip.AddrPort]bool{}
	for _, p := range e.Service.Ports {
		if p.Transport() == catalog.ProtocolUDP {
			want[netip.AddrPortFrom(e.Service.VIP, uint16(p.Port))] = true
		}
	}
	return want
}

// udpPortName returns the name of svc's UDP port number port.
func udpPortName(svc *catalog.Service, port int) string {
	for _, p := range svc.Ports {
		if p.Port == port && p.Transport() == catalog.ProtocolUDP {
			return p.Name
		}
	}
	return ""
}

// reconcile opens and closes the UDP sockets of the services that changed
// between old and snap (every service when old is nil), and closes the
// flows whose instance left a changed service.
func (u *udpVIPs) reconcile(old, snap *catalog.Snapshot) {
	names := changedNames(old, snap)
	if len(names) == 0 {
		return
	}
	held := map[string][]netip.AddrPort{}
	for ap, l := range u.sockets {
		held[l.service] = append(held[l.service], ap)
	}
	for ap, p := range u.pending {
		held[p.service] = append(held[p.service], ap)
	}
	for _, name := range names {
		want := wantedUDPPorts(snap, name)
		for _, ap := range held[name] {
			if !want[ap] {
				u.drop(ap, name)
			}
		}
		for ap := range want {
			if l, ok := u.sockets[ap]; ok && l.service == name {
				u.sweep(l)
				continue
			}
			u.listen(ap, name)
		}
	}
}

// retryFailed tries again the binds that failed or were skipped.
func (u *udpVIPs) retryFailed(snap *catalog.Snapshot) {
	for ap, p := range u.pending {
		if !wantedUDPPorts(snap, p.service)[ap] {
			u.drop(ap, p.service)
			continue
		}
		if p.skipped && u.vp.openListeners() >= u.vp.lim.listeners {
			continue
		}
		u.listen(ap, p.service)
	}
}

// drop closes or forgets what service name holds on ap.
func (u *udpVIPs) drop(ap netip.AddrPort, name string) {
	if l, ok := u.sockets[ap]; ok && l.service == name {
		u.close(ap, l)
	}
	if p, ok := u.pending[ap]; ok && p.service == name {
		u.unpend(ap)
	}
	u.forgetMetrics(name)
}

func (u *udpVIPs) unpend(ap netip.AddrPort) {
	if u.pending[ap].skipped {
		u.nSkipped--
		u.vp.setSkipped()
	}
	delete(u.pending, ap)
}

// listen binds ap for service name, with SO_REUSEPORT (caddy's listen),
// so a Caddy reload's new config binds beside the old one. A failure is
// logged once and counted on every attempt.
func (u *udpVIPs) listen(ap netip.AddrPort, name string) {
	vp := u.vp
	if l, ok := u.sockets[ap]; ok { // the VIP:port moved to another service
		u.close(ap, l)
	} else if vp.openListeners() >= vp.lim.listeners {
		if p, ok := u.pending[ap]; !ok || !p.skipped || p.service != name {
			if ok {
				u.unpend(ap)
			}
			u.pending[ap] = udpPending{service: name, skipped: true}
			u.nSkipped++
			vp.noteSkip(ap, name)
		}
		return
	}
	addr := caddy.NetworkAddress{Network: "udp", Host: ap.Addr().String(), StartPort: uint(ap.Port()), EndPort: uint(ap.Port())}
	lnAny, err := addr.Listen(vp.ctx, 0, net.ListenConfig{Control: vipnet.FreeBind})
	if err == nil {
		if l := u.newListener(lnAny, ap, name); l != nil {
			u.sockets[ap] = l
			vp.open.Inc()
			if p, was := u.pending[ap]; was {
				if !p.skipped {
					vp.logger.Info("UDP VIP socket bound after earlier failure", zap.String("service", name), zap.Stringer("addr", ap))
				}
				u.unpend(ap)
			}
			vp.logger.Debug("UDP VIP socket open", zap.String("service", name), zap.Stringer("addr", ap))
			go u.serve(l)
			return
		}
		if c, ok := lnAny.(interface{ Close() error }); ok {
			c.Close()
		}
		err = fmt.Errorf("socket is %T, not a UDP socket", lnAny)
	}
	vp.bindErrors.WithLabelValues(name).Inc()
	if p, was := u.pending[ap]; !was || p.skipped || p.service != name {
		vp.logger.Error("cannot listen on service VIP (UDP); other services keep serving, retrying",
			zap.String("service", name), zap.Stringer("addr", ap),
			zap.Duration("retry", vp.retry), zap.Error(err))
		if was {
			u.unpend(ap)
		}
	}
	u.pending[ap] = udpPending{service: name}
}

// newListener wraps what caddy's Listen returned, or returns nil when it
// is no UDP socket.
func (u *udpVIPs) newListener(ln any, ap netip.AddrPort, name string) *udpListener {
	pc, ok := ln.(net.PacketConn)
	if !ok {
		return nil
	}
	conn, ok := pc.(*net.UDPConn)
	if w, wrapped := pc.(interface{ Unwrap() net.PacketConn }); !ok && wrapped {
		conn, ok = w.Unwrap().(*net.UDPConn)
	}
	if !ok {
		return nil
	}
	sock, err := newUDPSock(conn)
	if err != nil {
		return nil
	}
	return &udpListener{
		service: name, port: int(ap.Port()), closer: pc, sock: sock,
		served: make(chan struct{}),
		flows:  map[netip.AddrPort]*udpFlow{},
		m:      u.serviceMetrics(name),
	}
}

// close closes l's socket and its flows, and waits for their goroutines.
func (u *udpVIPs) close(ap netip.AddrPort, l *udpListener) {
	l.closer.Close()
	<-l.served
	for _, fl := range l.all() {
		u.stop(l, fl, closedSocket)
	}
	l.wg.Wait()
	delete(u.sockets, ap)
	u.vp.open.Dec()
	u.vp.logger.Debug("UDP VIP socket closed", zap.String("service", l.service), zap.Stringer("addr", ap))
}

func (u *udpVIPs) closeAll() {
	for ap, l := range u.sockets {
		u.close(ap, l)
	}
}

// forgetMetrics drops the per-service series of a service that holds no
// UDP VIP:port, bound or pending; its bind errors too when it holds no TCP
// one either.
func (u *udpVIPs) forgetMetrics(service string) {
	for _, l := range u.sockets {
		if l.service == service {
			return
		}
	}
	for _, p := range u.pending {
		if p.service == service {
			return
		}
	}
	u.deleteService(service)
	for _, l := range u.vp.listeners {
		if l.service == service {
			return
		}
	}
	for _, m := range []map[netip.AddrPort]string{u.vp.failed, u.vp.skipped} {
		for _, name := range m {
			if name == service {
				return
			}
		}
	}
	u.vp.bindErrors.DeleteLabelValues(service)
}

// sweep closes l's flows whose instance is no longer usable.
func (u *udpVIPs) sweep(l *udpListener) {
	flows := l.all()
	if len(flows) == 0 {
		return
	}
	usable := usableInstances(u.vp.app.view(l.service), l.port)
	for _, fl := range flows {
		if usable[fl.key] != fl.addr {
			u.stop(l, fl, closedInstance)
		}
	}
}

// usableInstances maps the catalog.ConnectionKey of each instance of v
// that a flow on UDP port number port may stay with to its address for
// that port: those v serves, in any locality, and those draining (which
// get no new flow, but keep theirs, as TCP connections stay open through a
// drain) that pass the app's checks; all at an address the dial policy
// allows.
func usableInstances(v *view, port int) map[string]string {
	if v == nil || v.entry.Service == nil {
		return nil
	}
	name := udpPortName(v.entry.Service, port)
	if name == "" {
		return nil
	}
	m := make(map[string]string, len(v.instances))
	add := func(in *catalog.Instance) {
		p, ok := in.PortFor(name)
		if !ok {
			return
		}
		ap := netip.AddrPortFrom(in.Address, uint16(p))
		if v.allowed(ap) {
			m[catalog.ConnectionKey(in.Service, in.ID)] = ap.String()
		}
	}
	for _, in := range v.instances {
		add(in)
	}
	for _, in := range v.entry.Instances() {
		if in.State() == catalog.StateDraining && v.health.healthy(in.Service, in.ID) {
			add(in)
		}
	}
	return m
}
