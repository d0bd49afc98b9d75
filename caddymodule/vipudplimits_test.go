package caddymodule

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestVIPUDPCaddyfile: udp_idle_timeout in the Caddyfile, and a negative
// one refused.
func TestVIPUDPCaddyfile(t *testing.T) {
	out, err := adapt(t, `{
	netsel {
		vip_proxy {
			udp_idle_timeout 45s
		}
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"vip_proxy":{"enabled":true,"udp_idle_timeout":45000000000}`; !strings.Contains(out, want) {
		t.Errorf("adapted config lacks %s:\n%s", want, out)
	}
	cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"netsel":{"vip_proxy":{"enabled":true,"udp_idle_timeout":-1}}}}`
	if err := caddy.Load([]byte(cfg), true); err == nil {
		caddy.Stop()
		t.Fatal("a negative udp_idle_timeout loaded")
	} else if !strings.Contains(err.Error(), "udp_idle_timeout") {
		t.Errorf("error %q does not name udp_idle_timeout", err)
	}
}

// TestVIPUDPListenerCap: UDP sockets count in max_listeners with the TCP
// listeners; past it a UDP VIP:port is not bound until another closes.
func TestVIPUDPListenerCap(t *testing.T) {
	e := newEnv(t)
	tcpVIP, tcpPort := vipPort(t)
	e.service("t1", tcpVIP, catalog.Port{Name: "default", Port: tcpPort, Protocol: catalog.ProtocolTCP})
	e.instance("t1", "1", echoServer(t, "t1:"), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"max_listeners": 2}})
	app := activeApp(t)
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, err := echoOnce(hostPort(tcpVIP, tcpPort), "x")
		return err == nil
	}, "the TCP VIP never served")

	vip1, port1 := udpVIP(t)
	e.service("u1", vip1, udpPort(port1))
	e.instance("u1", "1", startUDPEcho(t, "u1", "127.0.0.1").addr, 1)
	waitUDP(t, hostPort(vip1, port1))
	vip2, port2 := udpVIP(t)
	e.service("u2", vip2, udpPort(port2))
	e.instance("u2", "1", startUDPEcho(t, "u2", "127.0.0.1").addr, 1)
	testenv.Eventually(t, 3*time.Second, func() bool { return gaugeValue(app.vips.skippedGauge) == 1 },
		"the third VIP:port is not counted skipped")
	if _, _, err := ask(udpClient(t, hostPort(vip2, port2)), "x", 300*time.Millisecond); err == nil {
		t.Fatal("a UDP VIP:port past max_listeners answered")
	}
	e.del(ks.InstanceKey("t1", "1"))
	e.del(ks.ServiceKey("t1"))
	waitUDP(t, hostPort(vip2, port2))
	if n := gaugeValue(app.vips.skippedGauge); n != 0 {
		t.Errorf("%v VIP:ports skipped, want none", n)
	}
}

// TestVIPUDPReload: a Caddy reload's new config binds the UDP VIP:ports
// beside the old one's (SO_REUSEPORT) and serves at once, with no wait for
// bind_retry; the old config's flows and goroutines end.
func TestVIPUDPReload(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("re", vip, udpPort(port))
	e.instance("re", "a", startUDPEcho(t, "a", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	waitUDP(t, addr)
	old := udpClient(t, addr)
	mustAsk(t, old, "before")

	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"bind_retry": "1h", "udp_idle_timeout": "1m"}})
	c := udpClient(t, addr)
	testenv.Eventually(t, 2*time.Second, func() bool {
		_, _, err := ask(c, "x", 100*time.Millisecond)
		return err == nil
	}, "the reloaded config does not serve the UDP VIP")
	mustAsk(t, old, "after") // the old client's next datagram finds the new socket
	testenv.Eventually(t, 3*time.Second, func() bool { return udpGoroutines() == 3 },
		"%d UDP proxy goroutines after a reload; want the new socket's and two flows", udpGoroutines())
}

// TestVIPUDPFlood: past max_conns_per_listener flows, datagrams of new
// clients are dropped and counted, never forwarded; the flows open keep
// being served. Deleting the service closes its socket and every flow, and
// their goroutines end.
func TestVIPUDPFlood(t *testing.T) {
	const limit = 20
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("flood", vip, udpPort(port))
	echo := startUDPEcho(t, "a", "127.0.0.1")
	e.instance("flood", "a", echo.addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"max_conns_per_listener": limit}})
	app := activeApp(t)
	u := app.vips.udp
	addr := hostPort(vip, port)
	waitUDP(t, addr)

	var held []*net.UDPConn
	for range 5 {
		c := udpClient(t, addr)
		mustAsk(t, c, "held")
		held = append(held, c)
	}
	// 2000 client addresses, 100 sockets at a time. The kernel drops what
	// overflows the VIP socket's buffer, silently: a batch sends again
	// until the proxy has counted a drop for every client past the limit.
	dropped := u.dropped.WithLabelValues("flood", "flow_limit")
	for i := range 20 {
		var batch []*net.UDPConn
		for range 100 {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, c)
		}
		want := float64(100*(i+1) - limit)
		testenv.Eventually(t, 10*time.Second, func() bool {
			if testutilCount(dropped) >= want {
				return true
			}
			for _, c := range batch {
				c.Write([]byte("flood"))
			}
			return false
		}, "dropped %v datagrams of %d flooding clients; want at least %v", testutilCount(dropped), 100*(i+1), want)
		for _, c := range batch {
			c.Close()
		}
	}
	if n := gaugeValue(u.flowsOpen); n > limit {
		t.Errorf("%v flows open, limit %d", n, limit)
	}
	for _, c := range held {
		mustAsk(t, c, "still")
	}
	if n := echo.sources(); n > limit {
		t.Errorf("the instance was sent datagrams from %d flows; at most %d may pass the limit", n, limit)
	}
	if n := udpGoroutines(); n > limit+1 {
		t.Errorf("%d UDP proxy goroutines with at most %d flows and one socket", n, limit)
	}

	e.del(ks.InstanceKey("flood", "a"))
	e.del(ks.ServiceKey("flood"))
	testenv.Eventually(t, 5*time.Second, func() bool { return gaugeValue(u.flowsOpen) == 0 },
		"flows of a deleted service still open")
	testenv.Eventually(t, 5*time.Second, func() bool { return udpGoroutines() == 0 },
		"%d UDP proxy goroutines after the service's socket closed", udpGoroutines())
	// Nothing listens on VIP:port any more: port unreachable.
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, _, err := ask(held[0], "gone", 500*time.Millisecond)
		return errors.Is(err, syscall.ECONNREFUSED)
	}, "the UDP socket of a deleted service still open")
}

// TestVIPUDPBindFailureIsolated: a UDP VIP:port taken by another socket is
// counted and retried while the other services serve, and bound once it
// is free.
func TestVIPUDPBindFailureIsolated(t *testing.T) {
	e := newEnv(t)
	blockedVIP, blockedPort := udpVIP(t)
	blocker, err := net.ListenPacket("udp", hostPort(blockedVIP, blockedPort))
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	okVIP, okPort := udpVIP(t)
	e.service("blocked", blockedVIP, udpPort(blockedPort))
	e.service("fine", okVIP, udpPort(okPort))
	e.instance("blocked", "a", startUDPEcho(t, "blocked", "127.0.0.1").addr, 1)
	e.instance("fine", "a", startUDPEcho(t, "fine", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	app := activeApp(t)

	waitUDP(t, hostPort(okVIP, okPort))
	testenv.Eventually(t, 2*time.Second, func() bool {
		return testutilCount(app.vips.bindErrors.WithLabelValues("blocked")) >= 2
	}, "no bind error counted, or not retried")
	blocker.Close() // bind_retry is 200ms
	waitUDP(t, hostPort(blockedVIP, blockedPort))
}
