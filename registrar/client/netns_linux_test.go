package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

// childEnv, set, makes TestAcrossHostsChild the client side of
// TestAcrossHosts: the registrar's URL.
const childEnv = "NETSEL_TEST_ACROSS_HOSTS_REGISTRAR"

// TestAcrossHosts runs a multi-host registrar on 198.18.0.1 in one network
// namespace and a client on 198.18.0.2 in another, joined by a veth pair:
// two hosts. Registrations from the client host without an address end
// at the client host's address, filled in by the client library (the
// route's source address) or by the registrar (the request's remote
// address), and record the client host; a loopback address is refused.
func TestAcrossHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command")
	}
	srv, cli := fmt.Sprintf("netsel-r%d", os.Getpid()), fmt.Sprintf("netsel-c%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srv, cli} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot create a network namespace: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	// The pair is created inside the namespaces: nothing of the root
	// namespace is touched, and deleting the namespaces removes it.
	ip("-n", srv, "link", "add", "vr", "type", "veth", "peer", "name", "vc", "netns", cli)
	ip("-n", srv, "addr", "add", "198.18.0.1/24", "dev", "vr")
	ip("-n", cli, "addr", "add", "198.18.0.2/24", "dev", "vc")
	for _, l := range [][2]string{{srv, "lo"}, {srv, "vr"}, {cli, "lo"}, {cli, "vc"}} {
		ip("-n", l[0], "link", "set", l[1], "up")
	}

	etcd := testenv.StartEtcd(t) // in the root namespace, on loopback
	r, err := registrar.New(context.Background(), registrar.Config{
		Client:   testenv.NewClient(t, etcd.URL),
		Keyspace: ks,
		HostAddr: netip.MustParseAddr("198.18.0.1"),
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln := listenIn(t, srv, "198.18.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })

	child := exec.Command("ip", "netns", "exec", cli, os.Args[0], "-test.run=^TestAcrossHostsChild$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), childEnv+"=http://"+ln.Addr().String())
	out, err := child.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestAcrossHostsChild")) {
		t.Fatalf("client host: %v\n%s", err, out)
	}
	for _, id := range []string{"by-client", "by-registrar"} {
		resp, err := etcd.Client.Get(context.Background(), ks.InstanceKey("web", id))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("instance %s: %v %v", id, resp, err)
		}
		in, err := catalog.DecodeInstance(resp.Kvs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		if in.Address.String() != "198.18.0.2" || in.Host.String() != "198.18.0.2" {
			t.Errorf("instance %s at %v from host %v, want the client host 198.18.0.2 for both", id, in.Address, in.Host)
		}
	}
}

// listenIn listens on addr in network namespace ns: the socket stays in
// ns, whichever thread later uses it.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	runtime.LockOSThread()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter namespace %s: %v", ns, err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with the goroutine.
		t.Fatalf("leave namespace %s: %v", ns, err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, lerr)
	}
	return ln
}

// TestAcrossHostsChild is the client host of TestAcrossHosts; it is
// skipped unless that test runs it.
func TestAcrossHostsChild(t *testing.T) {
	url := os.Getenv(childEnv)
	if url == "" {
		t.Skip("run by TestAcrossHosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The registrar would fill in the same address: look at what the
	// client sent.
	sent := &recorder{next: http.DefaultTransport}
	c, err := client.New(client.Config{URLs: []string{url}, HTTPClient: &http.Client{Transport: sent}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Register(ctx, client.Registration{Service: "web", ID: "by-client", Port: 8080, TTL: time.Minute})
	if err != nil || a.Address.String() != "198.18.0.2" {
		t.Fatalf("Register without an address: %+v %v, want it at this host's 198.18.0.2", a, err)
	}
	if !strings.Contains(sent.body, `"address":"198.18.0.2"`) {
		t.Errorf("Register without an address sent %s, want the route's source address 198.18.0.2", sent.body)
	}
	post := func(body api.RegisterRequest) (int, []byte) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(url+"/v1/services/web/instances", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	if status, body := post(api.RegisterRequest{ID: "by-registrar", Port: 8080}); status != http.StatusOK || !bytes.Contains(body, []byte(`"address":"198.18.0.2"`)) {
		t.Fatalf("POST without an address: %d %s, want 200 at this host's 198.18.0.2", status, body)
	}
	if status, body := post(api.RegisterRequest{ID: "lo", Address: "127.0.0.1", Port: 8080}); status != http.StatusBadRequest || !bytes.Contains(body, []byte(`198.18.0.2`)) {
		t.Fatalf("POST at 127.0.0.1: %d %s, want 400 suggesting this host's 198.18.0.2", status, body)
	}
}

// recorder is an http.RoundTripper that keeps the body of the last request
// it sends on to next.
type recorder struct {
	next http.RoundTripper
	body string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		r.body = string(b)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.next.RoundTrip(req)
}
