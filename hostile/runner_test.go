package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/childproc"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// runnerBin is the netsel binary the tests start, built once by TestMain.
var runnerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsel-hostile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runnerBin = filepath.Join(dir, "netsel")
	cmd := exec.Command("go", "build", "-o", runnerBin, "./build/netsel")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./build/netsel: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// defaultNoFile is the descriptor limit the runner is started with: low
// enough that an unbounded resource runs out within a bounded attack.
const defaultNoFile = 1024

// runner is a `netsel serve` process on free loopback ports.
type runner struct {
	t        testing.TB
	proc     *childproc.Process
	logs     *testenv.SyncBuffer
	args     []string
	noFile   int
	dataDir  string
	addrs    map[string]string // flag -> address: registrar, dns, http, etcd-listen, etcd-peer
	vipCIDR  netip.Prefix
	http     *http.Client
	canary   *testenv.Backend
	canaryVI api.RegisterResponse
	// canaryToken, when set, is the bearer token the canary registers with.
	canaryToken string
}

// runnerOption changes how a runner is started.
type runnerOption func(*runner)

// withFlags adds command-line flags.
func withFlags(args ...string) runnerOption {
	return func(r *runner) { r.args = append(r.args, args...) }
}

// withCanaryToken makes the canary register with token.
func withCanaryToken(token string) runnerOption { return func(r *runner) { r.canaryToken = token } }

// withVIPCIDR sets the runner's VIP range.
func withVIPCIDR(p string) runnerOption {
	return func(r *runner) { r.vipCIDR = netip.MustParsePrefix(p) }
}

// startRunner starts the runner, waits until it is ready and registers a
// canary service that no attack touches; the runner is stopped when the
// test ends.
func startRunner(t *testing.T, opts ...runnerOption) *runner {
	t.Helper()
	r := &runner{
		t:       t,
		logs:    &testenv.SyncBuffer{},
		noFile:  defaultNoFile,
		dataDir: filepath.Join(t.TempDir(), "etcd"),
		addrs:   map[string]string{},
		// Apart from a developer's NetSel and from other tests' ranges.
		vipCIDR: netip.MustParsePrefix(fmt.Sprintf("127.%d.0.0/16", 100+rand.N(100))),
		http:    &http.Client{Timeout: 10 * time.Second},
	}
	for _, o := range opts {
		o(r)
	}
	for _, flag := range []string{"registrar", "dns", "http", "etcd-listen", "etcd-peer"} {
		r.addrs[flag] = testenv.FreeAddr(t)
	}
	proc, err := childproc.Start("/bin/sh", r.shArgs(), r.logs)
	if err != nil {
		t.Fatal(err)
	}
	r.proc = proc
	t.Cleanup(func() {
		if killed := proc.Stop(os.Interrupt, 30*time.Second); killed {
			t.Errorf("runner did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			t.Logf("runner logs (tail):\n%s", tail(r.logs.String(), 8000))
		}
	})
	testenv.Eventually(t, 60*time.Second, func() bool {
		if !proc.Running() {
			t.Fatalf("runner exited at start: %v\n%s", proc.State(), tail(r.logs.String(), 8000))
		}
		return strings.Contains(r.logs.String(), "netsel ready") && r.healthy() == nil
	}, "runner not ready; logs:\n%s", r.logs)

	r.canary = testenv.StartBackend(t, "canary")
	var auth []string
	if r.canaryToken != "" {
		auth = []string{"Authorization", "Bearer " + r.canaryToken}
	}
	status, body := r.register("canary", map[string]any{"address": "127.0.0.1", "port": int(r.canary.Addr.Port()), "id": "canary-1", "ttl": "1h"}, auth...)
	if status != http.StatusOK {
		t.Fatalf("register canary: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &r.canaryVI); err != nil {
		t.Fatal(err)
	}
	r.requireServing(t)
	return r
}

// shArgs are the arguments of the shell that sets the runner's descriptor
// limit, hard and soft alike (so the runner cannot raise it), and execs it.
func (r *runner) shArgs() []string {
	args := []string{"-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(r.noFile), runnerBin,
		"serve", "-data-dir", r.dataDir, "-vip-cidr", r.vipCIDR.String(), "-stop-timeout", "20s"}
	for flag, addr := range r.addrs {
		args = append(args, "-"+flag, addr)
	}
	return append(args, r.args...)
}

// addr returns the address the runner was given for flag.
func (r *runner) addr(flag string) string { return r.addrs[flag] }

// registrarURL is the registrar's base URL.
func (r *runner) registrarURL() string { return "http://" + r.addr("registrar") }

// register POSTs body as a registration of service name and returns the
// status and body of the answer (0 when the request failed).
func (r *runner) register(name string, body any, header ...string) (int, []byte) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, r.registrarURL()+"/v1/services/"+name+"/instances", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return r.do(req)
}

// get GETs path of the registrar.
func (r *runner) get(path string) (int, []byte) {
	req, _ := http.NewRequest(http.MethodGet, r.registrarURL()+path, nil)
	return r.do(req)
}

func (r *runner) do(req *http.Request) (int, []byte) {
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

// healthy returns nil when /v1/health answers 200.
func (r *runner) healthy() error {
	status, body := r.get("/v1/health")
	if status != http.StatusOK {
		return fmt.Errorf("/v1/health: %d %s", status, body)
	}
	return nil
}

// fds returns the number of descriptors the runner holds open.
func (r *runner) fds() int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.proc.PID()))
	if err != nil {
		return -1
	}
	return len(es)
}

// etcd returns a client of the runner's embedded etcd, for writing what
// something other than the registrar could write.
func (r *runner) etcd(t *testing.T) *clientv3.Client {
	return testenv.NewClient(t, "http://"+r.addr("etcd-listen"))
}

// requireServing fails t unless the runner is up, healthy, and its DNS,
// HTTP proxy and VIP proxy all serve the canary. It waits up to 10s for
// each, since an attack may have just ended.
func (r *runner) requireServing(t *testing.T) {
	t.Helper()
	if !r.proc.Running() {
		t.Fatalf("runner died: %v", r.proc.State())
	}
	checks := []struct {
		what string
		ok   func() error
	}{
		{"/v1/health", r.healthy},
		{"DNS A canary.netsel.", r.canaryDNS},
		{"HTTP proxy Host: canary.netsel", func() error { return r.canaryHTTP("http://"+r.addr("http"), "canary.netsel") }},
		{"VIP proxy", func() error {
			return r.canaryHTTP("http://"+netip.AddrPortFrom(r.canaryVI.VIP, uint16(r.canaryVI.Port)).String(), "")
		}},
	}
	for _, c := range checks {
		var last error
		deadline := time.Now().Add(10 * time.Second)
		for {
			if last = c.ok(); last == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if last != nil {
			t.Fatalf("%s does not answer for the canary: %v (runner up: %v, fds %d)", c.what, last, r.proc.Running(), r.fds())
		}
	}
}

func (r *runner) canaryDNS() error {
	m := new(dns.Msg)
	m.SetQuestion("canary.netsel.", dns.TypeA)
	in, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, r.addr("dns"))
	if err != nil {
		return err
	}
	if len(in.Answer) != 1 {
		return fmt.Errorf("answer %v", in.Answer)
	}
	if a, ok := in.Answer[0].(*dns.A); !ok || a.A.String() != r.canaryVI.VIP.String() {
		return fmt.Errorf("answer %v, want %s", in.Answer[0], r.canaryVI.VIP)
	}
	return nil
}

func (r *runner) canaryHTTP(url, host string) error {
	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || string(b) != "canary" {
		return fmt.Errorf("%d %q", resp.StatusCode, b)
	}
	return nil
}

// requireInstances fails t unless every id in ids is a live instance of
// service name, as etcd (through the registrar's linearizable read) has it.
func (r *runner) requireInstances(t *testing.T, name string, ids []string) {
	t.Helper()
	have := map[string]bool{}
	status, body := r.get("/v1/services/" + name)
	if status != http.StatusOK {
		t.Fatalf("GET service %s: %d %s", name, status, body)
	}
	var svc api.ServiceView
	if err := json.Unmarshal(body, &svc); err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	for _, in := range svc.Instances {
		have[in.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			t.Errorf("instance %s/%s got a 200 and is gone", name, id)
		}
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// withTimeout is a context for one attack.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// restart stops the runner gracefully and starts it again with the same
// flags and data, waiting until it is ready.
func (r *runner) restart(t *testing.T) {
	t.Helper()
	if killed := r.proc.Stop(os.Interrupt, 30*time.Second); killed {
		t.Errorf("runner did not stop within 30s of SIGINT")
	}
	mark := len(r.logs.String())
	proc, err := childproc.Start("/bin/sh", r.shArgs(), r.logs)
	if err != nil {
		t.Fatal(err)
	}
	r.proc = proc
	testenv.Eventually(t, 60*time.Second, func() bool {
		if !proc.Running() {
			t.Fatalf("runner exited at restart: %v\n%s", proc.State(), tail(r.logs.String(), 8000))
		}
		return strings.Contains(r.logs.String()[mark:], "netsel ready") && r.healthy() == nil
	}, "runner not ready after restart")
}

// metric returns the value of a series of the registrar's /metrics, named
// as the exposition format writes it (`name` or `name{label="value"}`), or
// -1 when it is absent.
func (r *runner) metric(name string) float64 {
	_, body := r.get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// fdReserve is how many descriptors the runner must keep free for etcd
// and the registrar whatever its clients do.
const fdReserve = 64

// requireReserve fails t when the runner holds so many descriptors that
// etcd could not open a file.
func (r *runner) requireReserve(t *testing.T) {
	t.Helper()
	if n := r.fds(); n > r.noFile-fdReserve {
		t.Errorf("runner holds %d of its %d descriptors: fewer than %d left for etcd", n, r.noFile, fdReserve)
	}
}
