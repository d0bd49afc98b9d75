package caddymodule

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/netsel/netsel/catalog"
)

// A VIP:port whose protocol is http, h2c or grpc (catalog.Port.PerRequest)
// is proxied per request rather than per connection, so the calls of one
// gRPC or keep-alive connection spread over every instance. Each request
// goes to an instance chosen as a TCP connection's would be (serving,
// healthy, allowed by the dial policy, in the locality while any is, by
// weight or least_conn); one whose instance cannot be reached (nothing
// sent yet) goes to the next, up to tries; when none can be, the client
// gets 502 naming the service with Retry-After, or for gRPC the status
// UNAVAILABLE naming it. The proxy's connection limits count client
// connections as on a TCP port. http and h2c ports are served by net/http
// (viphttp.go), grpc ports by grpc-go (vipgrpc.go).

const (
	// vipMaxHeaderBytes bounds a request's (and a response's) headers.
	vipMaxHeaderBytes = 1 << 20
	// vipMaxIdlePerInstance bounds the idle HTTP/1.1 connections kept to
	// each instance; HTTP/2 needs one, opening more only past the
	// instance's concurrent stream limit.
	vipMaxIdlePerInstance = 64
	vipUpstreamIdle       = 90 * time.Second
	// vipReadBuffer is the read buffer of a client connection.
	vipReadBuffer = 4 << 10
)

// start serves l: per request when its port carries HTTP, else by piping
// each connection to an instance.
func (vp *vipProxy) start(l *vipListener) {
	if p, ok := vp.perRequestPort(l); ok {
		if p.Protocol == catalog.ProtocolGRPC {
			vp.serveGRPC(l)
		} else {
			vp.serveHTTP(l, p)
		}
		return
	}
	vp.serve(l)
}

// perRequestPort returns l's port when it is proxied per request.
func (vp *vipProxy) perRequestPort(l *vipListener) (catalog.Port, bool) {
	e, ok := vp.app.index.Snapshot().Service(l.service)
	if !ok || e.Service == nil {
		return catalog.Port{}, false
	}
	for _, p := range e.Service.Ports {
		if p.Port == l.port && p.Transport() == catalog.ProtocolTCP {
			return p, p.PerRequest()
		}
	}
	return catalog.Port{}, false
}

// unreachableMessage is what a client is told when no instance of l's
// service answered.
func unreachableMessage(l *vipListener, err error) string {
	var ue *unreachableError
	switch {
	case errors.Is(err, errNoInstance):
		return fmt.Sprintf("netsel: service %q has no healthy instance serving port %d", l.service, l.port)
	case errors.As(err, &ue):
		return fmt.Sprintf("netsel: no instance of service %q reachable on port %d (%d of %d dialled)", l.service, l.port, ue.tried, ue.of)
	}
	return fmt.Sprintf("netsel: the instance of service %q failed before answering", l.service)
}

// unreachableError is every dial of a request failing.
type unreachableError struct {
	tried, of int
	err       error
}

func (e *unreachableError) Error() string {
	return "dialing " + strconv.Itoa(e.tried) + " of " + strconv.Itoa(e.of) + " instances: " + e.err.Error()
}
func (e *unreachableError) Unwrap() error { return e.err }

// admitListener applies the VIP proxy's connection limits to a per-request
// listener: a connection past them is reset at once, as on a TCP port.
type admitListener struct {
	net.Listener
	vp       *vipProxy
	l        *vipListener
	buffered bool // buffer reads (net/http's HTTP/2 server reads unbuffered)
}

func (al *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := al.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !al.vp.admit(al.l) {
			al.vp.overload.Inc()
			refuse(c)
			continue
		}
		al.l.accepted.Inc()
		ac := &admittedConn{Conn: c, done: func() { al.vp.done(al.l) }}
		if al.buffered {
			ac.r = bufio.NewReaderSize(c, vipReadBuffer)
		}
		return ac, nil
	}
}

// admittedConn uncounts itself once closed. Its reads may be buffered.
type admittedConn struct {
	net.Conn
	r    *bufio.Reader
	done func()
	once sync.Once
}

func (c *admittedConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return c.Conn.Read(p)
	}
	return c.r.Read(p)
}

func (c *admittedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}
