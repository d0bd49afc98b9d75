package caddymodule

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// sumBackend is an HTTP/1.1 and h2c server that answers "<name> <bytes>
// <sha256>" of the request body, with the digest again as trailer
// X-Body-Sha256 and the protocol it was reached over in X-Proto.
func sumBackend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		sum := hex.EncodeToString(h.Sum(nil))
		w.Header().Set("Trailer", "X-Body-Sha256")
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, name+" "+itoa(int(n))+" "+sum)
		w.Header().Set("X-Body-Sha256", sum)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// httpVIPService registers name with one port of protocol proto on a fresh
// VIP, an instance (a sumBackend) per id plus the dead addresses given, and
// returns the VIP:port.
func httpVIPService(t *testing.T, e *env, name, proto string, ids []string, dead ...string) string {
	t.Helper()
	vip, port := vipPort(t)
	e.service(name, vip, catalog.Port{Name: "default", Port: port, Protocol: proto})
	for _, id := range ids {
		e.instance(name, id, sumBackend(t, id), 1)
	}
	for i, d := range dead {
		e.instance(name, "dead"+itoa(i), d, 1)
	}
	return hostPort(vip, port)
}

// post sends body to addr and checks what the sumBackend says of it; it
// returns the instance that answered and the protocol it was reached over.
func post(t *testing.T, c *http.Client, addr string, body []byte) (string, *http.Response) {
	t.Helper()
	resp, err := c.Post("http://"+addr+"/sum", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST via %s: %v", addr, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST via %s: %d %q, %v", addr, resp.StatusCode, got, err)
	}
	sum := sha256.Sum256(body)
	want := itoa(len(body)) + " " + hex.EncodeToString(sum[:])
	name, rest, _ := strings.Cut(string(got), " ")
	if rest != want {
		t.Fatalf("POST of %d bytes via %s: instance %s got %q", len(body), addr, name, rest)
	}
	if tr := resp.Trailer.Get("X-Body-Sha256"); tr != hex.EncodeToString(sum[:]) {
		t.Fatalf("trailer X-Body-Sha256 = %q, want %x", tr, sum)
	}
	return name, resp
}

func waitPost(t *testing.T, c *http.Client, addr string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() bool {
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, "%s never served", addr)
}

func TestVIPHTTPPerRequest(t *testing.T) {
	e := newEnv(t)
	h1 := httpVIPService(t, e, "web1", catalog.ProtocolHTTP, []string{"a", "b", "c"})
	h2 := httpVIPService(t, e, "web2", catalog.ProtocolH2C, []string{"a", "b", "c"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})

	for _, tc := range []struct {
		addr, client, upstream string
	}{{h1, "HTTP/1.1", "HTTP/1.1"}, {h2, "HTTP/2.0", "HTTP/2.0"}, {h1, "HTTP/2.0", "HTTP/1.1"}} {
		// One keep-alive connection (HTTP/1.1) or one HTTP/2 connection.
		tr := &http.Transport{MaxConnsPerHost: 1}
		if tc.client == "HTTP/2.0" {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		waitPost(t, c, tc.addr)
		seen := map[string]int{}
		for i := range 30 {
			body := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*4099)
			name, resp := post(t, c, tc.addr, body)
			if resp.Proto != tc.client || resp.Header.Get("X-Proto") != tc.upstream {
				t.Fatalf("%s client: reply over %s, instance reached over %s; want %s", tc.client, resp.Proto, resp.Header.Get("X-Proto"), tc.upstream)
			}
			seen[name]++
		}
		if seen["a"] < 8 || seen["b"] < 8 || seen["c"] < 8 {
			t.Errorf("%s client to %s: 30 requests gave %v; want them spread", tc.client, tc.addr, seen)
		}
	}
}

func TestVIPHTTPRetryKeepsBody(t *testing.T) {
	e := newEnv(t)
	addr := httpVIPService(t, e, "retrybody", catalog.ProtocolHTTP, []string{"live"}, deadAddr(t), deadAddr(t))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := newClient()
	waitPost(t, c, addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for range 6 {                                            // each first tries a dead instance twice of three times
		if name, _ := post(t, c, addr, body); name != "live" {
			t.Fatalf("answered by %q", name)
		}
	}
}

func TestVIPHTTPNoInstance502(t *testing.T) {
	e := newEnv(t)
	addr := httpVIPService(t, e, "downweb", catalog.ProtocolHTTP, nil, deadAddr(t))
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	c := newClient()
	var resp *http.Response
	var body []byte
	testenv.Eventually(t, 10*time.Second, func() bool {
		var err error
		resp, err = c.Post("http://"+addr+"/", "text/plain", strings.NewReader("hello"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusBadGateway
	}, "no 502 from %s", addr)
	if !strings.Contains(string(body), `"downweb"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("502 %q, Retry-After %q; want the service named and a Retry-After", body, resp.Header.Get("Retry-After"))
	}
}

// A client that never finishes its headers is cut after header_timeout;
// meanwhile others are served.
func TestVIPHTTPSlowHeadersCut(t *testing.T) {
	e := newEnv(t)
	addr := httpVIPService(t, e, "slowloris", catalog.ProtocolHTTP, []string{"a"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"header_timeout": "500ms"}})
	c := newClient()
	waitPost(t, c, addr)

	var slow []net.Conn
	for range 5 {
		s := mustDial(t, addr)
		io.WriteString(s, "POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		slow = append(slow, s)
	}
	start := time.Now()
	for range 5 {
		post(t, c, addr, []byte("meanwhile"))
	}
	for _, s := range slow {
		s.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := bufio.NewReader(s).ReadString('\n'); err == nil {
			continue // a 408 or 400 line is fine too; it must then close
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a client that never finished its headers still connected after %v", time.Since(start))
		}
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("slow clients cut after %v; want about 500ms", d)
	}
}

// The connection limits of a TCP VIP apply to a per-request one.
func TestVIPHTTPConnLimit(t *testing.T) {
	e := newEnv(t)
	addr := httpVIPService(t, e, "limited", catalog.ProtocolHTTP, []string{"a"})
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true, vipOpts: map[string]any{"max_conns_per_listener": 2}})
	c := newClient()
	waitPost(t, c, addr)
	c.CloseIdleConnections()

	// Two keep-alive connections held open; a third is reset.
	var held []*http.Client
	for range 2 {
		hc := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
		testenv.Eventually(t, 5*time.Second, func() bool {
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return err == nil
		}, "keep-alive client not served")
		held = append(held, hc)
	}
	// The reset may come before the dial returns, or on the first read.
	if third, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		defer third.Close()
		io.WriteString(third, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		third.SetReadDeadline(time.Now().Add(3 * time.Second))
		if line, err := bufio.NewReader(third).ReadString('\n'); err == nil {
			t.Errorf("a third connection past max_conns_per_listener 2 was answered: %q", line)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a third connection past max_conns_per_listener 2: %v, want a reset", err)
	}
	for _, hc := range held {
		hc.CloseIdleConnections()
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "served again once the held connections closed")
}

// An upgrade (as WebSocket's) through an http port carries raw bytes both
// ways once the instance switched protocols.
func TestVIPHTTPUpgrade(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "test-echo" {
			io.WriteString(w, "no upgrade")
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	vip, port := vipPort(t)
	e.service("upgrade", vip, catalog.Port{Name: "default", Port: port, Protocol: catalog.ProtocolHTTP})
	e.instance("upgrade", "a", ln.Addr().String(), 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, vip: true})
	addr := hostPort(vip, port)
	waitPost(t, newClient(), addr)

	c := mustDial(t, addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	for _, line := range []string{"ping\n", "pong\n"} {
		io.WriteString(c, line)
		if got, err := r.ReadString('\n'); got != line || err != nil {
			t.Fatalf("after the upgrade: %q, %v; want %q", got, err, line)
		}
	}
}
