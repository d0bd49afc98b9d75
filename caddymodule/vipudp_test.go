package caddymodule

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// udpEcho is a UDP echo server on loopback that answers each datagram
// with its name, ':' and the datagram, and counts what it received.
type udpEcho struct {
	addr string
	got  atomic.Int64

	mu   sync.Mutex
	srcs map[string]bool
}

// sources counts the addresses the server was sent datagrams from: through
// the proxy, one per flow.
func (e *udpEcho) sources() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.srcs)
}

// startUDPEcho serves name on host (an IP) until the test ends.
func startUDPEcho(t *testing.T, name, host string) *udpEcho {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	e := &udpEcho{addr: pc.LocalAddr().String(), srcs: map[string]bool{}}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			e.got.Add(1)
			e.mu.Lock()
			e.srcs[from.String()] = true
			e.mu.Unlock()
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return e
}

// udpVIP returns a random VIP and a UDP port free on it.
func udpVIP(t *testing.T) (netip.Addr, int) {
	t.Helper()
	vip := randomVIP()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(vip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return vip, pc.LocalAddr().(*net.UDPAddr).Port
}

func udpPort(port int) catalog.Port {
	return catalog.Port{Name: catalog.DefaultPortName, Port: port, Protocol: catalog.ProtocolUDP}
}

// udpClient is a client socket of its own, so a client address of its own.
func udpClient(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends msg on c and returns the answer's instance name and echo.
func ask(c *net.UDPConn, msg string, wait time.Duration) (name, echo string, err error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", "", err
	}
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil {
		return "", "", err
	}
	name, echo, _ = strings.Cut(string(buf[:n]), ":")
	return name, echo, nil
}

// mustAsk is ask that fails the test on no answer or a wrong echo.
func mustAsk(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	name, echo, err := ask(c, msg, 3*time.Second)
	if err != nil || echo != msg {
		t.Fatalf("UDP echo of %q from %v: %q, %v", msg, c.LocalAddr(), echo, err)
	}
	return name
}

// waitUDP waits until addr answers a datagram.
func waitUDP(t *testing.T, addr string) {
	t.Helper()
	c := udpClient(t, addr)
	testenv.Eventually(t, 5*time.Second, func() bool {
		_, _, err := ask(c, "x", 200*time.Millisecond)
		return err == nil
	}, "UDP VIP %s never answered", addr)
}

// udpGoroutines counts the goroutines of the UDP VIP proxy: sockets'
// readers and flows.
func udpGoroutines() int {
	buf := make([]byte, 8<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "caddymodule.(*udpVIPs)") {
			n++
		}
	}
	return n
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// TestVIPUDPEcho: datagrams to a UDP VIP:port reach the service's
// instances and the answers come back from VIP:port; each client address
// keeps to one instance, clients spread over both; the same port number
// over TCP, on the same VIP, is proxied apart.
func TestVIPUDPEcho(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("dns", vip,
		catalog.Port{Name: "dns", Port: port, Protocol: catalog.ProtocolUDP},
		catalog.Port{Name: "dnstcp", Port: port, Protocol: catalog.ProtocolTCP})
	for _, id := range []string{"a", "b"} {
		u := startUDPEcho(t, id, "127.0.0.1")
		tcp := netip.MustParseAddrPort(echoServer(t, id+"-tcp:"))
		b, err := catalog.EncodeInstance(&catalog.Instance{
			ID: id, Service: "dns", Address: tcp.Addr(), Port: int(tcp.Port()), Weight: 1, Registered: time.Now(),
			Ports: map[string]int{"dns": int(netip.MustParseAddrPort(u.addr).Port()), "dnstcp": int(tcp.Port())},
		})
		if err != nil {
			t.Fatal(err)
		}
		e.put(ks.InstanceKey("dns", id), b)
	}
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	app := activeApp(t)
	addr := hostPort(vip, port)
	waitUDP(t, addr)

	seen := map[string]int{}
	for i := range 20 {
		c := udpClient(t, addr)
		first := mustAsk(t, c, "hello")
		for range 4 {
			if got := mustAsk(t, c, "again"); got != first {
				t.Fatalf("client %d: answered by %s, then by %s", i, first, got)
			}
		}
		if got := c.RemoteAddr().String(); got != addr {
			t.Fatalf("answer from %s, not the VIP %s", got, addr)
		}
		seen[first]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("20 clients went to %v; want both instances", seen)
	}
	if n := gaugeValue(app.vips.udp.flowsOpen); n != 21 { // and waitUDP's
		t.Errorf("%v UDP flows open, want 21", n)
	}
	if got, err := echoOnce(addr, "tcp"); err != nil || !strings.HasSuffix(got, "-tcp:tcp") {
		t.Errorf("TCP on the same VIP:port: %q, %v", got, err)
	}
}

// TestVIPUDPHugeDatagram: the largest IPv4 UDP datagram goes through both
// ways intact.
func TestVIPUDPHugeDatagram(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("big", vip, udpPort(port))
	e.instance("big", "a", startUDPEcho(t, "a", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	waitUDP(t, addr)

	msg := bytes.Repeat([]byte("0123456789abcdef"), 65507/16+1)[:65507-2] // the answer adds "a:"
	c := udpClient(t, addr)
	name, echo, err := ask(c, string(msg), 3*time.Second)
	if err != nil || name != "a" || echo != string(msg) {
		t.Fatalf("%d-byte datagram: answer of %d bytes from %q, %v", len(msg), len(echo), name, err)
	}
}

// TestVIPUDPIdleTimeout: a flow with no datagram for udp_idle_timeout
// closes (the gauge falls); one that keeps talking keeps its instance.
func TestVIPUDPIdleTimeout(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("idle", vip, udpPort(port))
	e.instance("idle", "a", startUDPEcho(t, "a", "127.0.0.1").addr, 1)
	e.instance("idle", "b", startUDPEcho(t, "b", "127.0.0.1").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"udp_idle_timeout": "300ms"}})
	app := activeApp(t)
	u := app.vips.udp
	addr := hostPort(vip, port)
	waitUDP(t, addr)
	testenv.Eventually(t, 3*time.Second, func() bool { return gaugeValue(u.flowsOpen) == 0 },
		"the first flow never closed idle")

	idle := udpClient(t, addr)
	mustAsk(t, idle, "x")
	busy := udpClient(t, addr)
	first := mustAsk(t, busy, "x")
	opened := testutilCount(u.flows.WithLabelValues("idle"))
	idleBefore := testutilCount(u.closedBy[closedIdle])
	start := time.Now()
	for time.Since(start) < time.Second {
		if got := mustAsk(t, busy, "x"); got != first {
			t.Fatalf("a busy flow moved from %s to %s", first, got)
		}
		time.Sleep(100 * time.Millisecond) // the client's pace, well within the timeout
	}
	if n := gaugeValue(u.flowsOpen); n != 1 {
		t.Errorf("%v flows open after the idle one's timeout; want the busy one", n)
	}
	if d := testutilCount(u.closedBy[closedIdle]) - idleBefore; d != 1 {
		t.Errorf("%v flows closed idle; want 1", d)
	}
	if d := testutilCount(u.flows.WithLabelValues("idle")) - opened; d != 0 {
		t.Errorf("%v new flows while one client kept talking", d)
	}
	mustAsk(t, idle, "again") // a new flow
	if d := testutilCount(u.flows.WithLabelValues("idle")) - opened; d != 1 {
		t.Errorf("%v new flows for the idle client's next datagram; want 1", d)
	}
	testenv.Eventually(t, 3*time.Second, func() bool { return gaugeValue(u.flowsOpen) == 0 },
		"flows never closed idle")
}

// TestVIPUDPDialPolicy: instances at addresses the dial policy refuses (a
// VIP, a denied address) are never sent a datagram.
func TestVIPUDPDialPolicy(t *testing.T) {
	e := newEnv(t)
	vip, port := udpVIP(t)
	e.service("pol", vip, udpPort(port))
	atVIP := startUDPEcho(t, "vip", vip.String())
	denied := startUDPEcho(t, "denied", "127.0.0.2")
	good := startUDPEcho(t, "good", "127.0.0.1")
	e.instance("pol", "a-vip", atVIP.addr, 1)
	e.instance("pol", "b-denied", denied.addr, 1)
	e.instance("pol", "c-good", good.addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, dial: map[string]any{"deny": []string{"127.0.0.2/32"}}})
	addr := hostPort(vip, port)
	waitUDP(t, addr)
	for range 12 {
		if got := mustAsk(t, udpClient(t, addr), "x"); got != "good" {
			t.Fatalf("answered by %s", got)
		}
	}
	if n, m := atVIP.got.Load(), denied.got.Load(); n+m != 0 {
		t.Errorf("refused instances were sent datagrams: at a VIP %d, denied %d", n, m)
	}
}
