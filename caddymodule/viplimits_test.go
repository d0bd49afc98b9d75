package caddymodule

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// proxied dials addr and reads the echo server's prefix: the connection
// reached an instance. It returns the open connection.
func proxied(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := mustDial(t, addr)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatalf("connection via %s not proxied: %v", addr, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// refusedAtOnce dials addr and checks the proxy resets or closes the
// connection within a second, without reaching an instance.
func refusedAtOnce(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return // refused before accept: fine too
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(make([]byte, 2))
	var ne net.Error
	switch {
	case n > 0:
		t.Fatalf("connection past the limit via %s was proxied", addr)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("connection past the limit via %s hangs open", addr)
	}
}

// TestVIPConnectionCaps: past max_conns_per_listener one VIP:port resets
// new connections at once, past max_conns every VIP:port does; the
// connections admitted keep working, and a flood of refused ones does not
// grow the process's descriptors.
func TestVIPConnectionCaps(t *testing.T) {
	e := newEnv(t)
	vipA, portA := vipPort(t)
	vipB, portB := vipPort(t)
	e.service("a", vipA, catalog.Port{Name: "default", Port: portA, Protocol: catalog.ProtocolTCP})
	e.service("b", vipB, catalog.Port{Name: "default", Port: portB, Protocol: catalog.ProtocolTCP})
	e.instance("a", "1", echoServer(t, "a:"), 1)
	e.instance("b", "1", echoServer(t, "b:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"max_conns_per_listener": 4, "max_conns": 6}})
	addrA, addrB := hostPort(vipA, portA), hostPort(vipB, portB)
	for _, addr := range []string{addrA, addrB} {
		testenv.Eventually(t, 5*time.Second, func() bool {
			_, err := echoOnce(addr, "x")
			return err == nil
		}, "VIP %s never served", addr)
	}

	var held []net.Conn
	for range 4 {
		held = append(held, proxied(t, addrA))
	}
	before := testenv.OpenFDs(t)
	for range 50 {
		refusedAtOnce(t, addrA)
	}
	if grew := testenv.OpenFDs(t) - before; grew > 10 {
		t.Errorf("50 refused connections left %d more descriptors open", grew)
	}
	for range 2 {
		held = append(held, proxied(t, addrB))
	}
	refusedAtOnce(t, addrB) // 6 in all
	for i, c := range held {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "ping"); err != nil {
			t.Fatalf("held connection %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
			t.Fatalf("held connection %d stopped working: %v", i, err)
		}
	}
	// Freed slots are taken again.
	held[0].Close()
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(addrA, "x")
		return err == nil
	}, "a freed slot on %s was never reused", addrA)
}

// TestVIPIdleTimeout: a proxied connection idle both ways for idle_timeout
// is closed; one that keeps talking is not.
func TestVIPIdleTimeout(t *testing.T) {
	e := newEnv(t)
	vip, port := vipPort(t)
	e.service("echo", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	e.instance("echo", "1", echoServer(t, "a:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"idle_timeout": "400ms"}})
	addr := hostPort(vip, port)
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(addr, "x")
		return err == nil
	}, "VIP %s never served", addr)

	idle := proxied(t, addr)
	defer idle.Close()
	busy := proxied(t, addr)
	defer busy.Close()
	start := time.Now()
	idleClosed := make(chan error, 1)
	go func() {
		idle.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := idle.Read(make([]byte, 1))
		idleClosed <- err
	}()
	for time.Since(start) < 1500*time.Millisecond {
		busy.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(busy, "x"); err != nil {
			t.Fatalf("busy connection closed after %v: %v", time.Since(start), err)
		}
		if _, err := io.ReadFull(busy, make([]byte, 1)); err != nil {
			t.Fatalf("busy connection closed after %v: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := <-idleClosed
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection still open after %v", time.Since(start))
	}
	if err == nil {
		t.Fatalf("idle connection read data")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Logf("idle connection ended with %v", err)
	}
}

// TestVIPListenerCap: past max_listeners a service's VIP:port is not
// listened on, the others serve, and it opens once another closes.
func TestVIPListenerCap(t *testing.T) {
	e := newEnv(t)
	type svc struct {
		name, addr string
	}
	var svcs []svc
	for _, name := range []string{"s1", "s2", "s3"} {
		vip, port := vipPort(t)
		e.service(name, vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
		e.instance(name, "1", echoServer(t, name+":"), 1)
		svcs = append(svcs, svc{name, hostPort(vip, port)})
	}
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"max_listeners": 2}})
	serving := func() (n int, off string) {
		for _, s := range svcs {
			if _, err := echoOnce(s.addr, "x"); err == nil {
				n++
			} else {
				off = s.name
			}
		}
		return n, off
	}
	testenv.Eventually(t, 5*time.Second, func() bool { n, _ := serving(); return n >= 2 }, "two VIPs serve")
	// Let the third have its chance: it must stay closed.
	time.Sleep(500 * time.Millisecond)
	n, off := serving()
	if n != 2 {
		t.Fatalf("%d VIP listeners serve, want max_listeners = 2", n)
	}
	offAddr := ""
	deleted := false
	for _, s := range svcs {
		switch {
		case s.name == off:
			offAddr = s.addr
		case !deleted:
			e.del(ks.ServiceKey(s.name))
			deleted = true
		}
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(offAddr, "x")
		return err == nil
	}, "the skipped VIP of %s opens once another closes", off)
}
