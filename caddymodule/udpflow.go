package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxDatagram is the size of the buffers datagrams are moved in: any UDP
// payload fits (65,507 bytes over IPv4, 65,527 over IPv6).
const maxDatagram = 64 << 10

// datagramBufs holds the buffers of maxDatagram bytes.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// udpFlow is one client address's datagrams through a UDP VIP:port, sent
// to one instance over a socket of its own, connected to the instance.
type udpFlow struct {
	client  netip.AddrPort
	to      udpAddr // client, to send to
	up      *net.UDPConn
	sock    udpSock // up's
	key     string  // catalog.ConnectionKey of the instance
	addr    string  // the instance's address:port for the flow's port
	release func()  // uncounts the flow (forwarder.hold)

	last   atomic.Int64 // unix nanoseconds of the latest datagram either way
	reason atomic.Int32 // closeReason, set once, by whoever closes the flow
}

// serve reads l's socket until it is closed, forwarding each datagram on
// its client's flow. It is l's only reader, and the only goroutine that
// opens flows.
func (u *udpVIPs) serve(l *udpListener) {
	defer close(l.served)
	forward := func(b []byte, client netip.AddrPort) { u.forward(l, b, client) }
	var backoff time.Duration
	for {
		err := l.sock.read(forward)
		if err == nil {
			backoff = 0
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		u.vp.logger.Warn("UDP VIP read failed; retrying", zap.String("service", l.service), zap.Error(err), zap.Duration("after", backoff))
		time.Sleep(backoff)
	}
}

// forward sends client's datagram b on its flow, opening one if need be.
func (u *udpVIPs) forward(l *udpListener, b []byte, client netip.AddrPort) {
	now := time.Now().UnixNano()
	for range 2 { // once more when the flow closed under us
		fl := u.flowFor(l, client)
		if fl == nil {
			return
		}
		fl.last.Store(now)
		if err := fl.sock.send(b); err != nil {
			if errors.Is(err, net.ErrClosed) {
				continue
			}
			l.m.dropSend.Inc()
			if isRefused(err) {
				u.stop(l, fl, closedRefused)
			}
			return
		}
		l.m.toInstance.Inc()
		l.m.bytesToInstance.Add(float64(len(b)))
		return
	}
}

// flowFor returns client's flow: its open one while the instance is
// usable, else a new one; nil when none can be opened (counted).
func (u *udpVIPs) flowFor(l *udpListener, client netip.AddrPort) *udpFlow {
	v := u.vp.app.view(l.service)
	l.mu.Lock()
	fl := l.flows[client]
	l.mu.Unlock()
	if fl != nil {
		if v != l.usableView {
			l.usableView, l.usable = v, usableInstances(v, l.port)
		}
		if l.usable[fl.key] == fl.addr {
			return fl
		}
		u.stop(l, fl, closedInstance)
	}
	return u.open(l, v, client)
}

// open opens a flow for client to an instance of v, within the limits.
func (u *udpVIPs) open(l *udpListener, v *view, client netip.AddrPort) *udpFlow {
	var port string
	if v != nil && v.entry.Service != nil {
		port = udpPortName(v.entry.Service, l.port)
	}
	if port == "" {
		l.m.dropNoInstance.Inc()
		return nil
	}
	vp := u.vp
	l.mu.Lock()
	n := len(l.flows)
	l.mu.Unlock()
	if int64(n) >= vp.lim.perListener {
		l.m.dropLimit.Inc()
		return nil
	}
	if vp.conns.Add(1) > vp.lim.conns {
		vp.conns.Add(-1)
		l.m.dropLimit.Inc()
		return nil
	}
	up, c, release, err := vp.fwd.dialUDP(v, port, &l.rr)
	if err != nil {
		vp.conns.Add(-1)
		l.m.dropNoInstance.Inc()
		if err != errNoInstance {
			vp.logger.Debug("no instance reachable over UDP; dropping the datagram",
				zap.String("service", l.service), zap.Int("port", l.port), zap.Error(err))
		}
		return nil
	}
	sock, err := newUDPSock(up)
	if err != nil { // not for a *net.UDPConn just made
		up.Close()
		release()
		vp.conns.Add(-1)
		l.m.dropSend.Inc()
		return nil
	}
	fl := &udpFlow{client: client, to: toUDPAddr(client), up: up, sock: sock, key: c.key, addr: c.addr, release: release}
	fl.last.Store(time.Now().UnixNano())
	l.mu.Lock()
	l.flows[client] = fl
	l.mu.Unlock()
	u.flowsOpen.Inc()
	l.m.flows.Inc()
	l.wg.Add(1)
	go u.runFlow(l, fl)
	return fl
}

// dialUDP connects a UDP socket to an instance of v for port name, chosen
// as dial chooses one for a TCP connection; when no socket can be made to
// it, the next is tried. The returned release uncounts the flow.
func (f *forwarder) dialUDP(v *view, port string, rr *atomic.Uint64) (*net.UDPConn, candidate, func(), error) {
	cs := v.portCandidates(port)
	if len(cs) == 0 {
		return nil, candidate{}, nil, errNoInstance
	}
	start := f.start(cs, rr)
	var errs []error
	for i := 0; i < len(cs) && i < f.tries; i++ {
		c := cs[(start+i)%len(cs)]
		ap, err := netip.ParseAddrPort(c.addr)
		if err == nil {
			var up *net.UDPConn
			if up, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap)); err == nil {
				return up, c, f.hold(c), nil
			}
		}
		errs = append(errs, err)
	}
	return nil, candidate{}, nil, fmt.Errorf("connecting to %d of %d instances: %w", len(errs), len(cs), errors.Join(errs...))
}

// runFlow sends the instance's datagrams to the client until the flow
// closes, then uncounts it.
func (u *udpVIPs) runFlow(l *udpListener, fl *udpFlow) {
	defer l.wg.Done()
	if r := u.pipeFlow(l, fl); r != closedNot {
		u.stop(l, fl, r)
	}
	if r := closeReason(fl.reason.Load()); r != closedNot {
		u.closedBy[r].Inc()
	}
	fl.release()
	u.vp.conns.Add(-1)
	u.flowsOpen.Dec()
}

// pipeFlow copies the instance's datagrams to the client. It returns why
// the flow must close, or closedNot when another goroutine closed it. The
// flow's socket has a read deadline of the latest datagram either way plus
// the idle timeout, moved on when it passes with a datagram sent since.
func (u *udpVIPs) pipeFlow(l *udpListener, fl *udpFlow) closeReason {
	toClient := func(b []byte, _ netip.AddrPort) {
		fl.last.Store(time.Now().UnixNano())
		if err := l.sock.sendTo(b, fl.to); err != nil {
			l.m.dropSend.Inc()
			return
		}
		l.m.toClient.Inc()
		l.m.bytesToCli.Add(float64(len(b)))
	}
	fl.up.SetReadDeadline(time.Unix(0, fl.last.Load()).Add(u.idle)) //nolint:errcheck // a closed socket fails the read
	for {
		err := fl.sock.read(toClient)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			last := time.Unix(0, fl.last.Load())
			if time.Since(last) >= u.idle {
				return closedIdle
			}
			fl.up.SetReadDeadline(last.Add(u.idle)) //nolint:errcheck // as above
		case isRefused(err):
			return closedRefused
		case errors.Is(err, net.ErrClosed):
			return closedNot
		default:
			return closedError
		}
	}
}

// stop closes fl for reason unless it is closed already: it leaves l's
// flows at once, so its client's next datagram opens a new flow, and its
// goroutine ends.
func (u *udpVIPs) stop(l *udpListener, fl *udpFlow, reason closeReason) {
	if !fl.reason.CompareAndSwap(int32(closedNot), int32(reason)) {
		return
	}
	l.mu.Lock()
	if l.flows[fl.client] == fl {
		delete(l.flows, fl.client)
	}
	l.mu.Unlock()
	fl.up.Close()
}

// all returns l's open flows.
func (l *udpListener) all() []*udpFlow {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := make([]*udpFlow, 0, len(l.flows))
	for _, fl := range l.flows {
		fs = append(fs, fl)
	}
	return fs
}
