package registrar

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimit bounds the connections the registrar holds open. When all are
// taken, the next connection accepted closes the one that has waited
// longest without a request in progress: idle between requests, or not yet
// past its first request's header (a TLS handshake included), and with no
// bytes waiting to be read, which a client that has just sent its request
// has; a new connection gets a moment (newConnGrace) to send its request.
// So clients that open connections and send nothing cannot keep a
// heartbeat waiting behind them, however fast they open more; they lose
// their connections instead, oldest first. Accept waits only while every
// connection is serving a request or has one waiting, which the request
// timeouts and the bound on blocking queries keep short.
type connLimit struct {
	max     int
	evicted func() // counts an eviction

	mu    sync.Mutex
	open  map[*limitedConn]struct{}
	freed chan struct{} // a slot freed, or a connection became evictable
}

func newConnLimit(max int, evicted func()) *connLimit {
	return &connLimit{max: max, evicted: evicted, open: map[*limitedConn]struct{}{}, freed: make(chan struct{}, 1)}
}

// listener wraps ln so that Accept keeps within l.
func (l *connLimit) listener(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, l: l, closed: make(chan struct{})}
}

// connState is the http.Server's ConnState hook: it tells l which
// connections are serving a request.
func (l *connLimit) connState(c net.Conn, s http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = nc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	switch s {
	case http.StateActive:
		lc.busy = true
	case http.StateIdle:
		lc.busy, lc.served, lc.since = false, true, time.Now()
	}
	l.mu.Unlock()
	if s == http.StateIdle {
		l.signal()
	}
}

func (l *connLimit) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// makeRoom returns once a connection may be accepted: at once while fewer
// than max are open, else after closing the victim (see victim), or when a
// connection frees. It returns false when closed ends.
func (l *connLimit) makeRoom(closed <-chan struct{}) bool {
	for {
		l.mu.Lock()
		if len(l.open) < l.max {
			l.mu.Unlock()
			return true
		}
		victim := l.victim()
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
			l.evicted()
			continue
		}
		// Connections with bytes waiting read them soon, and new ones
		// come of age, unannounced: look again shortly even if none frees.
		select {
		case <-l.freed:
		case <-time.After(50 * time.Millisecond):
		case <-closed:
			return false
		}
	}
}

// newConnGrace is how long a connection that has sent nothing yet is safe
// from being closed to make room: a client under load may take that long
// to write its request after connecting.
const newConnGrace = 250 * time.Millisecond

// victim returns the connection to close to make room: the one accepted
// or idle the longest, not serving a request, with no bytes waiting, and,
// if it has never served one, accepted at least newConnGrace ago; nil when
// there is none. l.mu is held.
func (l *connLimit) victim() *limitedConn {
	var spared map[*limitedConn]bool
	young := time.Now().Add(-newConnGrace)
	for {
		var v *limitedConn
		for c := range l.open {
			if !c.busy && !spared[c] && (c.served || c.since.Before(young)) && (v == nil || c.since.Before(v.since)) {
				v = c
			}
		}
		if v == nil || !hasInput(v.Conn) {
			return v
		}
		if spared == nil {
			spared = map[*limitedConn]bool{}
		}
		spared[v] = true
	}
}

func (l *connLimit) add(c net.Conn) *limitedConn {
	lc := &limitedConn{Conn: c, l: l, since: time.Now()}
	l.mu.Lock()
	l.open[lc] = struct{}{}
	l.mu.Unlock()
	return lc
}

func (l *connLimit) remove(c *limitedConn) {
	l.mu.Lock()
	delete(l.open, c)
	l.mu.Unlock()
	l.signal()
}

// limitedListener is a listener whose Accept keeps within a connLimit.
type limitedListener struct {
	net.Listener
	l         *connLimit
	closed    chan struct{}
	closeOnce sync.Once
}

func (ln *limitedListener) Accept() (net.Conn, error) {
	if !ln.l.makeRoom(ln.closed) {
		return nil, net.ErrClosed
	}
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return ln.l.add(c), nil
}

func (ln *limitedListener) Close() error {
	ln.closeOnce.Do(func() { close(ln.closed) })
	return ln.Listener.Close()
}

// limitedConn is an accepted connection; it gives its slot back when
// closed. busy and since are guarded by the connLimit's mu.
type limitedConn struct {
	net.Conn
	l      *connLimit
	once   sync.Once
	busy   bool      // serving a request
	served bool      // has served a request
	since  time.Time // when it was accepted or last finished a request
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.remove(c) })
	return err
}

// CloseWrite half-closes c when its connection can (TCP), as net/http does
// after an error answer so that the client reads it before the close.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
