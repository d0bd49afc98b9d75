package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/catalog"
)

// Instance selection policies of the layer-4 proxy.
const (
	policyRoundRobin = "round_robin"
	policyLeastConn  = "least_conn"
)

// errNoInstance is returned when a service has no healthy instance with the
// requested port.
var errNoInstance = errors.New("no healthy instance")

// forwarder picks instances of a service and dials them, trying the next
// one when a dial fails. It is shared by the VIP listeners and the caddy-l4
// handler.
type forwarder struct {
	dialTimeout time.Duration
	tries       int
	leastConn   bool

	active sync.Map // dial address -> *atomic.Int64, for least_conn
	// open counts connections per instance for the reader report; nil
	// counts nothing.
	open *openConns
}

func newForwarder(dialTimeout time.Duration, tries int, policy string, open *openConns) *forwarder {
	if dialTimeout <= 0 {
		dialTimeout = defaultVIPDialTimeout
	}
	if tries <= 0 {
		tries = 3
	}
	return &forwarder{dialTimeout: dialTimeout, tries: tries, leastConn: policy == policyLeastConn, open: open}
}

// candidate is an instance that serves the wanted port.
type candidate struct {
	addr   string
	weight int
	key    string // catalog.ConnectionKey of the instance
}

// candidates returns the dial addresses of v's instances for port name,
// less those the dial policy refuses: of the instances in v's locality
// when any of them serves the port, else of all.
func candidates(v *view, port string) []candidate {
	cs := make([]candidate, 0, len(v.instances))
	var local []candidate
	for _, in := range v.instances {
		p, ok := in.PortFor(port)
		if !ok {
			continue
		}
		ap := netip.AddrPortFrom(in.Address, uint16(p))
		if v.allowed != nil && !v.allowed(ap) {
			continue
		}
		c := candidate{ap.String(), in.Weight, catalog.ConnectionKey(in.Service, in.ID)}
		cs = append(cs, c)
		if v.locality != "" && in.Zone == v.locality {
			local = append(local, c)
		}
	}
	if len(local) > 0 {
		return local
	}
	return cs
}

// portCandidates returns the instances of v to send port name's traffic
// to, as candidates does.
func (v *view) portCandidates(port string) []candidate {
	if cs, ok := v.byPort[port]; ok {
		return cs
	}
	return candidates(v, port)
}

// dial connects to an instance of v for port name. Round robin is weighted
// by instance weight; least_conn picks the instance with fewest proxied
// connections. On a failed dial the next instance in order is tried, up to
// f.tries instances. The returned release must be called when the
// connection is done.
func (f *forwarder) dial(ctx context.Context, v *view, port string, rr *atomic.Uint64) (net.Conn, func(), error) {
	cs := v.portCandidates(port)
	if len(cs) == 0 {
		return nil, nil, errNoInstance
	}
	start := f.start(cs, rr)
	var errs []error
	d := net.Dialer{Timeout: f.dialTimeout}
	for i := 0; i < len(cs) && i < f.tries; i++ {
		c := cs[(start+i)%len(cs)]
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return conn, f.hold(c), nil
	}
	return nil, nil, fmt.Errorf("dialing %d of %d instances: %w", len(errs), len(cs), errors.Join(errs...))
}

// hold counts a connection (a UDP flow, or a request on a per-request VIP)
// to c, for the reader report and least_conn, and returns the func that
// uncounts it.
func (f *forwarder) hold(c candidate) func() {
	closed := noop
	if f.open != nil {
		closed = f.open.open(c.key)
	}
	if !f.leastConn {
		return closed
	}
	n := f.counter(c.addr)
	n.Add(1)
	return func() {
		closed()
		// Forget idle addresses, so instances that come and go do
		// not grow the map.
		if n.Add(-1) == 0 {
			f.active.CompareAndDelete(c.addr, n)
		}
	}
}

func noop() {}

// start returns the index of the first candidate to try.
func (f *forwarder) start(cs []candidate, rr *atomic.Uint64) int {
	if f.leastConn {
		best, bestN := 0, int64(-1)
		off := int(rr.Add(1) % uint64(len(cs))) // break ties in turn
		for i := range cs {
			j := (off + i) % len(cs)
			n := f.activeConns(cs[j].addr)
			if bestN < 0 || n < bestN {
				best, bestN = j, n
			}
		}
		return best
	}
	total := 0
	for _, c := range cs {
		total += c.weight
	}
	k := int((rr.Add(1) - 1) % uint64(total))
	for i, c := range cs {
		if k < c.weight {
			return i
		}
		k -= c.weight
	}
	return 0
}

// activeConns returns the connections open to addr.
func (f *forwarder) activeConns(addr string) int64 {
	if n, ok := f.active.Load(addr); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

func (f *forwarder) counter(addr string) *atomic.Int64 {
	if n, ok := f.active.Load(addr); ok {
		return n.(*atomic.Int64)
	}
	n, _ := f.active.LoadOrStore(addr, new(atomic.Int64))
	return n.(*atomic.Int64)
}

// closeWriter is a connection whose write side can be shut alone.
type closeWriter interface{ CloseWrite() error }

// pipe copies both ways between down and up until both directions end,
// passing half-closes on, then closes both. Between two *net.TCPConn,
// io.Copy uses splice(2) on Linux.
func pipe(down, up net.Conn, downR io.Reader) {
	pipeFunc(down, up,
		func() error { _, err := io.Copy(up, downR); return err },
		func() error { _, err := io.Copy(down, up); return err })
}

// pipeFunc is pipe with the copy of each direction given: toUp copies from
// down to up, toDown from up to down, each until EOF (nil) or an error.
func pipeFunc(down, up net.Conn, toUp, toDown func() error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := toUp(); err != nil {
			up.Close()
			down.Close()
			return
		}
		halfClose(up)
	}()
	if err := toDown(); err != nil {
		up.Close()
		down.Close()
	} else {
		halfClose(down)
	}
	<-done
	down.Close()
	up.Close()
}

func halfClose(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// refuse closes c at once with a reset, so the client fails fast instead of
// waiting on a connection nothing will answer.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// portName returns the name of svc's TCP port number port.
func portName(svc *catalog.Service, port int) (string, bool) {
	for _, p := range svc.Ports {
		if p.Port == port && p.Transport() == catalog.ProtocolTCP {
			return p.Name, true
		}
	}
	return "", false
}
