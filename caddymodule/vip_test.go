package caddymodule

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// vipPort returns a random VIP and a port free on it.
func vipPort(t *testing.T) (netip.Addr, int) {
	vip := randomVIP()
	return vip, freePort(t, vip.String())
}

// echoOnce writes msg, half-closes and reads the whole answer.
func echoOnce(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestVIPEcho(t *testing.T) {
	e := newEnv(t)
	vip, port := vipPort(t)
	e.service("echo", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	e.instance("echo", "a", echoServer(t, "a:"), 1)
	e.instance("echo", "b", echoServer(t, "b:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})

	addr := hostPort(vip, port)
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(addr, "x")
		return err == nil
	}, "VIP %s never served", addr)
	seen := map[string]int{}
	for range 10 {
		got, err := echoOnce(addr, "hello")
		if err != nil {
			t.Fatalf("echo via %s: %v", addr, err)
		}
		prefix, rest, _ := strings.Cut(got, ":")
		if rest != "hello" {
			t.Fatalf("echo via %s: %q", addr, got)
		}
		seen[prefix]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("round robin gave %v, want 5 each", seen)
	}

	// A long-lived connection, interleaved reads and writes.
	c := mustDial(t, addr)
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := r.Discard(2); err != nil { // "a:" or "b:"
		t.Fatal(err)
	}
	for _, line := range []string{"one\n", "two\n"} {
		io.WriteString(c, line)
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			t.Fatalf("read %q, %v; want %q", got, err, line)
		}
	}
}

func TestVIPRetriesNextInstance(t *testing.T) {
	e := newEnv(t)
	vip, port := vipPort(t)
	e.service("retry", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	dead := "127.0.0.1:" + itoa(freePort(t, "127.0.0.1")) // nothing listens
	e.instance("retry", "a-dead", dead, 1)
	e.instance("retry", "b", echoServer(t, "b:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(addr, "x")
		return err == nil
	}, "VIP %s never served", addr)
	for range 6 {
		if got, err := echoOnce(addr, "hi"); err != nil || got != "b:hi" {
			t.Fatalf("echo = %q, %v; want b:hi every time", got, err)
		}
	}
}

func TestVIPListenerFollowsCatalog(t *testing.T) {
	e := newEnv(t)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	app := activeApp(t)
	if err := app.index.WaitSynced(t.Context()); err != nil {
		t.Fatal(err)
	}

	vip, port := vipPort(t)
	addr := hostPort(vip, port)
	e.service("late", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	e.instance("late", "a", echoServer(t, "a:"), 1)
	start := time.Now()
	testenv.Eventually(t, time.Second, func() bool {
		got, err := echoOnce(addr, "x")
		return err == nil && got == "a:x"
	}, "listener for a new service not serving within 1s")
	t.Logf("new service served on its VIP after %v", time.Since(start))

	// An established connection survives other services coming and going.
	c := mustDial(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	r.Discard(2)
	other, otherPort := vipPort(t)
	e.service("other", other, catalog.Port{Name: "default", Port: otherPort, Protocol: catalog.ProtocolTCP})
	e.del(ks.ServiceKey("other"))

	// Deleting the service closes its listener; the open connection lives on.
	e.del(ks.InstanceKey("late", "a"))
	e.del(ks.ServiceKey("late"))
	start = time.Now()
	testenv.Eventually(t, time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "listener of a deleted service still open after 1s")
	t.Logf("listener closed after %v", time.Since(start))
	io.WriteString(c, "still\n")
	if got, err := r.ReadString('\n'); err != nil || got != "still\n" {
		t.Errorf("established connection after its listener closed: %q, %v", got, err)
	}
}

func TestVIPNoInstanceRefusesFast(t *testing.T) {
	e := newEnv(t)
	vip, port := vipPort(t)
	e.service("lonely", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolTCP})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "listener %s never opened", addr)

	start := time.Now()
	got, err := echoOnce(addr, "x")
	d := time.Since(start)
	var ne net.Error
	if got != "" || errors.As(err, &ne) && ne.Timeout() || d > 500*time.Millisecond {
		t.Errorf("connection to a service with no instance: %q, %v after %v; want a fast reset", got, err, d)
	}
	t.Logf("refused after %v: %v", d, err)
}

func TestVIPBindFailureIsolated(t *testing.T) {
	e := newEnv(t)
	blockedVIP, blockedPort := vipPort(t)
	blocker, err := net.Listen("tcp", hostPort(blockedVIP, blockedPort))
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	okVIP, okPort := vipPort(t)
	e.service("blocked", blockedVIP, catalog.Port{Name: "default", Port: blockedPort, Protocol: catalog.ProtocolTCP})
	e.service("fine", okVIP, catalog.Port{Name: "default", Port: okPort, Protocol: catalog.ProtocolTCP})
	e.instance("blocked", "a", echoServer(t, "blocked:"), 1)
	e.instance("fine", "a", echoServer(t, "fine:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	app := activeApp(t)

	testenv.Eventually(t, 5*time.Second, func() bool {
		got, err := echoOnce(hostPort(okVIP, okPort), "x")
		return err == nil && got == "fine:x"
	}, "the other service never served")
	testenv.Eventually(t, 2*time.Second, func() bool {
		return testutilCount(app.vips.bindErrors.WithLabelValues("blocked")) >= 1
	}, "no bind error counted")

	blocker.Close() // bind_retry is 200ms
	testenv.Eventually(t, 3*time.Second, func() bool {
		got, err := echoOnce(hostPort(blockedVIP, blockedPort), "x")
		return err == nil && got == "blocked:x"
	}, "VIP never bound after the port was freed")
}
