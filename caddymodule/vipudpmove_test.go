package caddymodule

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestVIPUDPInstanceLeaves: when an instance is deregistered its flows
// close at once, and their clients' next datagrams go to another instance;
// the other flows stay.
func TestVIPUDPInstanceLeaves(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("leave", vip, udpPort(port))
	a := startUDPEcho(t, "a", "127.0.0.1")
	e.instance("leave", "a", a.addr, 1)
	e.instance("leave", "b", startUDPEcho(t, "b", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	u := activeApp(t).vips.udp
	addr := hostPort(vip, port)
	waitUDP(t, addr)

	on := map[*net.UDPConn]string{}
	onA := 0
	for range 10 {
		c := udpClient(t, addr)
		on[c] = mustAsk(t, c, "x")
		if on[c] == "a" {
			onA++
		}
	}
	if onA == 0 || onA == 10 {
		t.Fatalf("%d of 10 clients on a; want some on each", onA)
	}
	open := gaugeValue(u.flowsOpen)
	gone := testutilCount(u.closedBy[closedInstance])
	e.del(ks.InstanceKey("leave", "a"))
	closed := func() float64 { return testutilCount(u.closedBy[closedInstance]) - gone }
	testenv.Eventually(t, 3*time.Second, func() bool { return closed() >= float64(onA) },
		"the flows to a left instance did not close") // waitUDP's flow may be one more
	if n := gaugeValue(u.flowsOpen); n != open-closed() {
		t.Errorf("%v flows open, want %v", n, open-closed())
	}
	before := a.got.Load()
	for c, was := range on {
		if got := mustAsk(t, c, "y"); got != "b" {
			t.Errorf("a client first on %s now answered by %s", was, got)
		}
	}
	if n := a.got.Load() - before; n != 0 {
		t.Errorf("the deregistered instance got %d datagrams", n)
	}
}

// TestVIPUDPInstanceUnhealthy: when the app's health checks take an
// instance out, which changes no catalog entry, its flows move on their
// clients' next datagrams.
func TestVIPUDPInstanceUnhealthy(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("sick", vip, udpPort(port))
	checked := map[string]net.Listener{} // what the health checks connect to
	for _, id := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		checked[id] = ln
		tcp := netip.MustParseAddrPort(ln.Addr().String())
		b, err := catalog.EncodeInstance(&catalog.Instance{
			ID: id, Service: "sick", Address: tcp.Addr(), Port: int(tcp.Port()), Weight: 1, Registered: time.Now(),
			Ports: map[string]int{catalog.DefaultPortName: int(netip.MustParseAddrPort(startUDPEcho(t, id, "127.0.0.1").addr).Port())},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.put(ks.InstanceKey("sick", id), b)
	}
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, health: map[string]any{"interval": "100ms", "timeout": "100ms"}})
	u := activeApp(t).vips.udp
	addr := hostPort(vip, port)
	waitUDP(t, addr)
	var onA, onB *net.UDPConn
	for onA == nil || onB == nil {
		c := udpClient(t, addr)
		if mustAsk(t, c, "x") == "a" {
			onA = c
		} else {
			onB = c
		}
	}
	gone := testutilCount(u.closedBy[closedInstance])
	checked["a"].Close()
	testenv.Eventually(t, 3*time.Second, func() bool { return mustAsk(t, onA, "y") == "b" },
		"a client of an unhealthy instance never moved")
	if n := testutilCount(u.closedBy[closedInstance]) - gone; n != 1 {
		t.Errorf("%v flows closed for their instance; want 1", n)
	}
	if got := mustAsk(t, onB, "z"); got != "b" {
		t.Errorf("a client of the healthy instance moved to %s", got)
	}
}

// TestVIPUDPDrain: a draining instance gets no new flow but keeps its own
// until it is deregistered; then they move.
func TestVIPUDPDrain(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("dr", vip, udpPort(port))
	e.instance("dr", "a", startUDPEcho(t, "a", "127.0.0.1").addr, 1)
	e.instance("dr", "b", startUDPEcho(t, "b", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	waitUDP(t, addr)
	var onA *net.UDPConn
	for onA == nil {
		if c := udpClient(t, addr); mustAsk(t, c, "x") == "a" {
			onA = c
		}
	}
	b, _ := catalog.EncodeDrain(&catalog.Drain{Since: time.Now()})
	e.put(ks.DrainKey("dr", "a"), b)
	testenv.Eventually(t, 3*time.Second, func() bool {
		for range 4 {
			if mustAsk(t, udpClient(t, addr), "new") != "b" {
				return false
			}
		}
		return true
	}, "new clients still reach the draining instance")
	if got := mustAsk(t, onA, "y"); got != "a" {
		t.Errorf("a flow moved off a draining instance to %s", got)
	}
	e.del(ks.InstanceKey("dr", "a"))
	testenv.Eventually(t, 3*time.Second, func() bool { return mustAsk(t, onA, "z") == "b" },
		"a flow stayed with a deregistered instance")
}

// TestVIPUDPPortUnreachable: an instance whose port answers ICMP port
// unreachable ends the flow, and the client's next datagram goes to
// another instance.
func TestVIPUDPPortUnreachable(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("unr", vip, udpPort(port))
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close() // nothing listens there now: the kernel answers port unreachable
	e.instance("unr", "a-dead", deadAddr, 1)
	e.instance("unr", "b", startUDPEcho(t, "b", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	u := activeApp(t).vips.udp
	addr := hostPort(vip, port)
	waitUDP(t, addr)

	refused := testutilCount(u.closedBy[closedRefused])
	for i := range 4 { // two new flows, each to the dead instance first or second
		c := udpClient(t, addr)
		testenv.Eventually(t, 3*time.Second, func() bool {
			name, _, err := ask(c, "x", 200*time.Millisecond)
			return err == nil && name == "b"
		}, "client %d never reached the live instance", i)
		if got := mustAsk(t, c, "y"); got != "b" {
			t.Fatalf("client %d answered by %s", i, got)
		}
	}
	if testutilCount(u.closedBy[closedRefused]) == refused {
		t.Error("no flow closed on port unreachable")
	}
}
