package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	caddy.RegisterModule(new(LimitListener))
}

// LimitListener is a Caddy listener wrapper that bounds the connections
// open at once through a listener, such as the HTTP proxy's: a connection
// beyond MaxConns is reset as soon as it is accepted (counted in
// netsel_listener_overload_refused_total), so a flood of clients cannot
// take the process's descriptors. In a Caddyfile:
//
//	servers {
//		listener_wrappers {
//			netsel_limit {
//				max_conns <n>
//			}
//		}
//	}
type LimitListener struct {
	// MaxConns bounds the connections open at once. Default: 8192.
	MaxConns int `json:"max_conns,omitempty"`

	refused prometheus.Counter
}

// CaddyModule returns the Caddy module information.
func (*LimitListener) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.listeners.netsel_limit",
		New: func() caddy.Module { return new(LimitListener) },
	}
}

// Provision applies the default and registers the metric.
func (l *LimitListener) Provision(ctx caddy.Context) error {
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxHTTPProxyConns
	}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "netsel", Subsystem: "listener", Name: "overload_refused_total",
		Help: "Connections reset at once because a netsel_limit listener held max_conns.",
	})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(l.refused); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering metrics: %w", err)
			}
			l.refused = are.ExistingCollector.(prometheus.Counter)
		}
	}
	return nil
}

// Validate checks MaxConns.
func (l *LimitListener) Validate() error {
	if l.MaxConns < 0 {
		return fmt.Errorf("max_conns %d is negative", l.MaxConns)
	}
	return nil
}

// WrapListener returns ln bounded to MaxConns open connections.
func (l *LimitListener) WrapListener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, max: int64(l.MaxConns), refused: l.refused}
}

// UnmarshalCaddyfile reads "netsel_limit { max_conns <n> }".
func (l *LimitListener) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // wrapper name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "max_conns":
			n, err := countArg(d, opt, d.RemainingArgs())
			if err != nil {
				return err
			}
			l.MaxConns = n
		default:
			return d.Errf("unrecognized netsel_limit option '%s'", opt)
		}
	}
	return nil
}

type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused prometheus.Counter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			if l.refused != nil {
				l.refused.Inc()
			}
			refuse(c)
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite half-closes c when its connection can (TCP), as net/http does
// after an error answer so that the client reads it before the close.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*LimitListener)(nil)
	_ caddy.Validator       = (*LimitListener)(nil)
	_ caddy.ListenerWrapper = (*LimitListener)(nil)
	_ caddyfile.Unmarshaler = (*LimitListener)(nil)
)
