package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

// backend is an instance's server on loopback: HTTP answering its id, or a
// TCP line echo prefixed with it.
type backend struct {
	id   string
	port int
}

func startHTTPBackend(t *testing.T, id string) backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, id) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return backend{id: id, port: ln.Addr().(*net.TCPAddr).Port}
}

func startEchoBackend(t *testing.T, id string) backend {
	t.Helper()
	addr := testenv.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			fmt.Fprintf(c, "%s: %s\n", id, sc.Text())
		}
	})
	return backend{id: id, port: addr.Port}
}

// srvIDs returns the instance ids that DNS lists in the SRV answer of svc.
func srvIDs(t *testing.T, dnsAddr, svc string) map[string]bool {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(svc+".netsel.", dns.TypeSRV)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, dnsAddr)
	if err != nil {
		t.Fatalf("SRV %s: %v", svc, err)
	}
	ids := map[string]bool{}
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			ids[strings.TrimSuffix(srv.Target, "."+svc+".netsel.")] = true
		}
	}
	return ids
}

// proxied sends n requests for svc through the HTTP proxy and returns how
// many each instance answered; a failed request counts as "error".
func proxied(proxy, svc string, n int) map[string]int {
	got := map[string]int{}
	for range n {
		body, err := getVia(context.Background(), http.DefaultClient, proxy, svc)
		if err != nil {
			body = "error"
		}
		got[body]++
	}
	return got
}

// getVia sends GET / for svc through the HTTP proxy with hc and returns the
// body of a 200.
func getVia(ctx context.Context, hc *http.Client, proxy, svc string) (string, error) {
	return sendVia(ctx, hc, http.MethodGet, proxy, svc)
}

// sendVia sends method / (a POST with a small body) for svc through the
// HTTP proxy with hc and returns the body of a 200.
func sendVia(ctx context.Context, hc *http.Client, method, proxy, svc string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("ping")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+proxy+"/", body)
	if err != nil {
		return "", err
	}
	req.Host = svc + ".netsel"
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

// TestMaintenanceLeavesEveryReader: an instance in maintenance leaves DNS
// SRV answers and the HTTP proxy's rotation (and stays out across a
// re-registration); ending the maintenance brings it back.
func TestMaintenanceLeavesEveryReader(t *testing.T) {
	f := startStack(t)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	regs := map[string]client.Registration{}
	for _, id := range []string{"a", "b"} {
		b := startHTTPBackend(t, id)
		regs[id] = client.Registration{Service: "web", ID: id, Address: "127.0.0.1", Port: b.port}
		if _, err := c.Register(ctx, regs[id]); err != nil {
			t.Fatal(err)
		}
	}
	both := func() bool {
		ids := srvIDs(t, f.dns, "web")
		got := proxied(f.http, "web", 20)
		return ids["a"] && ids["b"] && got["a"] > 0 && got["b"] == 20-got["a"]
	}
	testenv.Eventually(t, 10*time.Second, both, "DNS and the proxy do not serve a and b")

	if err := c.Maintenance(ctx, "web", "a", "kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	onlyB := func() bool {
		ids := srvIDs(t, f.dns, "web")
		return !ids["a"] && ids["b"] && proxied(f.http, "web", 20)["b"] == 20
	}
	testenv.Eventually(t, 10*time.Second, onlyB, "a in maintenance is still served")
	// A re-registration (a restart, or a client whose heartbeats failed)
	// keeps it out.
	if _, err := c.Register(ctx, regs["a"]); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if !onlyB() {
			t.Fatal("a re-registered in maintenance is served again")
		}
	}
	if err := c.EndMaintenance(ctx, "web", "a"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, both, "a out of maintenance is not served again")
}

// TestDrainWaitsForVIPConnection: with real readers (the stack's CoreDNS
// and Caddy report what they serve), a drain with wait=connections of an
// instance that holds a long-lived TCP connection through the VIP proxy
// answers only once that connection closes; the proxy reports it open
// meanwhile.
func TestDrainWaitsForVIPConnection(t *testing.T) {
	f := startStack(t)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := startEchoBackend(t, "a")
	a, err := c.Register(ctx, client.Registration{Service: "echo", ID: "a", Address: "127.0.0.1", Port: b.port})
	if err != nil {
		t.Fatal(err)
	}
	vip := net.JoinHostPort(a.VIP.String(), strconv.Itoa(a.Port))
	var conn net.Conn
	testenv.Eventually(t, 10*time.Second, func() bool {
		var err error
		conn, err = net.DialTimeout("tcp", vip, time.Second)
		return err == nil
	}, "the VIP proxy does not listen on %s", vip)
	defer conn.Close()
	rd := bufio.NewReader(conn)
	say := func(msg string) error {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(conn, msg); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err == nil && line != "a: "+msg+"\n" {
			err = fmt.Errorf("answer %q", line)
		}
		return err
	}
	if err := say("hello"); err != nil {
		t.Fatalf("through the VIP: %v", err)
	}
	type answer struct {
		res *api.DrainResponse
		err error
	}
	ch := make(chan answer, 1)
	start := time.Now()
	go func() {
		res, err := c.Drain(ctx, "echo", "a", client.DrainOptions{Timeout: 30 * time.Second, Connections: true})
		ch <- answer{res, err}
	}()
	testenv.Eventually(t, 10*time.Second, func() bool {
		v, err := c.ServiceByState(ctx, "echo", "draining")
		return err == nil && len(v.Instances) == 1
	}, "echo/a is not draining")
	// While an instance drains the readers report promptly: both serve
	// the drain, and the proxy counts the connection.
	testenv.Eventually(t, 10*time.Second, func() bool {
		l, err := c.Readers(ctx)
		if err != nil || len(l.Readers) != 2 {
			return false
		}
		for _, r := range l.Readers {
			if r.Kind == catalog.ReaderProxy && r.Connections["echo/a"] == 1 {
				return true
			}
		}
		return false
	}, "the readers do not report the connection to echo/a")
	// The established connection keeps working while the drain waits.
	for range 3 {
		if err := say("still here"); err != nil {
			t.Fatalf("the connection broke during the drain: %v", err)
		}
		select {
		case a := <-ch:
			t.Fatalf("drain answered (%+v, %v) with a connection open", a.res, a.err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	conn.Close()
	select {
	case a := <-ch:
		if a.err != nil || !a.res.Confirmed || !a.res.Deregistered || a.res.Readers != 2 {
			t.Fatalf("drain: %+v %v, want confirmed by both readers and deregistered", a.res, a.err)
		}
		t.Logf("drain confirmed after %s", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("drain did not answer once the connection closed")
	}
}
