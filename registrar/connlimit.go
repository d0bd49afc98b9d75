package registrar

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit bounds the connections the registrar holds open. When all are
// taken, the next connection accepted closes one that is waiting: not
// serving a request, with no bytes waiting to be read, and quiet (accepted,
// read from or done with a request) for at least newConnGrace, the one
// quiet longest first. So clients that open connections and send nothing
// cannot keep a heartbeat waiting behind them, however fast they open
// more; they lose their connections instead, while a client that has just
// connected or sent its request keeps its own. Accept waits only while
// every connection is busy or recent, which the request timeouts, the
// bound on blocking queries and the grace keep short.
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
	switch s {
	case http.StateActive:
		lc.busy.Store(true)
	case http.StateIdle:
		lc.touch()
		lc.busy.Store(false)
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

// newConnGrace is how long a connection stays safe from being closed to
// make room after it was accepted, sent bytes or finished a request: a
// client under load may take that long to write its request.
const newConnGrace = 250 * time.Millisecond

// victim returns the connection to close to make room: the one quiet
// longest, not serving a request, with no bytes waiting and quiet for at
// least newConnGrace; nil when there is none. l.mu is held.
func (l *connLimit) victim() *limitedConn {
	var spared map[*limitedConn]bool
	oldest := time.Now().Add(-newConnGrace).UnixNano()
	for {
		var v *limitedConn
		for c := range l.open {
			if q := c.since.Load(); !c.busy.Load() && !spared[c] && q <= oldest && (v == nil || q < v.since.Load()) {
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
	lc := &limitedConn{Conn: c, l: l}
	lc.touch()
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
// closed.
type limitedConn struct {
	net.Conn
	l     *connLimit
	once  sync.Once
	busy  atomic.Bool  // serving a request
	since atomic.Int64 // when it was accepted, last read from or last done with a request (Unix ns)
}

// touch notes that c was active just now.
func (c *limitedConn) touch() { c.since.Store(time.Now().UnixNano()) }

// Read notes when c last sent bytes: a request being read is not waiting.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
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
