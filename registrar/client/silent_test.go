package client_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// gate forwards TCP connections to a registrar until it is silenced: then
// it accepts connections and reads what comes, and answers nothing, as a
// registrar whose host is lost (a link down drops packets; nothing is
// refused or reset).
type gate struct {
	ln     net.Listener
	silent atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.track(c)
			if g.silent.Load() {
				go io.Copy(io.Discard, c)
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			g.track(up)
			go g.pipe(up, c)
			go g.pipe(c, up)
		}
	}()
	return g
}

func (g *gate) track(c net.Conn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
}

// pipe copies src to dst, dropping what it reads once the gate is silent.
func (g *gate) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !g.silent.Load() {
			dst.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (g *gate) url() string { return "http://" + g.ln.Addr().String() }

// TestKeepaliveSilentRegistrar: a registrar that answers nothing costs one
// AttemptTimeout before the next registrar is tried, not the client's 15 s
// request timeout: the registration, and later the heartbeats, reach the
// next registrar well within the instance's TTL, and the instance is never
// lost.
func TestKeepaliveSilentRegistrar(t *testing.T) {
	const ttl = 5 * time.Second
	etcd := testenv.StartEtcd(t)
	r := testenv.StartRegistrar(t, etcd.URL)
	keepalive := func(t *testing.T, c *client.Client, id string) *events {
		ev := &events{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Keepalive(ctx, client.Registration{Service: "web", ID: id, Address: "127.0.0.1", Port: 80, TTL: ttl},
				client.KeepaliveOptions{Interval: time.Second, OnEvent: ev.add})
		}()
		t.Cleanup(func() {
			cancel()
			<-done
		})
		return ev
	}

	t.Run("registration", func(t *testing.T) {
		g := startGate(t, r.Addr)
		g.silent.Store(true)
		start := time.Now()
		ev := keepalive(t, newClient(t, g.url(), r.URL), "first")
		testenv.Eventually(t, 3*time.Second, func() bool { return ev.count(client.EventRegistered) > 0 },
			"not registered through the second registrar within 3s")
		t.Logf("registered %v after start, past a silent registrar", time.Since(start).Round(time.Millisecond))
	})

	t.Run("heartbeats", func(t *testing.T) {
		g := startGate(t, r.Addr)
		ev := keepalive(t, newClient(t, g.url(), r.URL), "second")
		testenv.Eventually(t, 5*time.Second, func() bool { return ev.count(client.EventRegistered) > 0 }, "never registered")
		g.silent.Store(true)
		silenced := time.Now()
		// Watch the instance for two TTLs: it must never expire.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for time.Since(silenced) < 2*ttl {
			<-tick.C
			if !instanceExists(t, etcd, "web", "second") {
				t.Fatalf("instance lost %v after its first registrar went silent", time.Since(silenced).Round(time.Millisecond))
			}
		}
		if n := ev.count(client.EventExpired); n > 0 {
			t.Errorf("the instance expired %d times", n)
		}
	})
}
