package caddymodule

import (
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
}

func newVIPLimits(cfg *VIPProxyConfig) vipLimits {
	l := vipLimits{
		listeners:   limit(cfg.MaxListeners, DefaultMaxVIPListeners),
		perListener: int64(limit(cfg.MaxConnsPerListener, DefaultMaxConnsPerVIP)),
		conns:       int64(limit(cfg.MaxConns, DefaultMaxVIPConns)),
		idle:        time.Duration(cfg.IdleTimeout),
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
	if !vp.skipNote {
		vp.skipNote = true
		vp.logger.Warn("max_listeners VIP listeners are open; further service VIP:ports are not listened on until others close",
			zap.Int("max_listeners", vp.lim.listeners), zap.String("service", name), zap.Stringer("addr", ap))
	}
	vp.skipped[ap] = name
	vp.skippedGauge.Set(float64(len(vp.skipped)))
}

func (vp *vipProxy) unskip(ap netip.AddrPort) {
	delete(vp.skipped, ap)
	vp.skippedGauge.Set(float64(len(vp.skipped)))
	if len(vp.skipped) == 0 {
		vp.skipNote = false
	}
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
// byte for the idle timeout.
func (vp *vipProxy) pipe(down, up net.Conn) {
	if vp.lim.idle <= 0 {
		pipe(down, up, down)
		return
	}
	var moved atomic.Uint64
	stop := watchIdle(vp.lim.idle, &moved, func() {
		vp.idleClosed.Inc()
		down.Close()
		up.Close()
	})
	defer stop()
	pipe(counting{down, &moved}, counting{up, &moved}, counting{down, &moved})
}

// counting is a connection whose reads count into moved.
type counting struct {
	net.Conn
	moved *atomic.Uint64
}

func (c counting) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.moved.Add(1)
	}
	return n, err
}

// CloseWrite half-closes the connection, as pipe expects of a TCP conn.
func (c counting) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// watchIdle calls expire once moved has not changed for idle (checked
// every idle/4, so after idle to 1.25×idle of silence); stop ends the
// watch.
func watchIdle(idle time.Duration, moved *atomic.Uint64, expire func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(idle / 4)
		defer tick.Stop()
		last, quiet := moved.Load(), time.Duration(0)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if now := moved.Load(); now != last {
				last, quiet = now, 0
			} else if quiet += idle / 4; quiet >= idle {
				expire()
				return
			}
		}
	}()
	return func() { close(done) }
}
