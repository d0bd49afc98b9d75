package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/childproc"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// promSDRefresh is the refresh and scrape interval of the test's
// Prometheus; a change must show in its targets within a few of them.
const promSDRefresh = time.Second

// dropWithin bounds how long Prometheus takes to drop a deregistered
// instance: a refresh, its discovery manager's batching of target updates
// (at most one each 5s), a scrape, and a margin for a loaded machine.
const dropWithin = promSDRefresh + 5*time.Second + promSDRefresh + 10*time.Second

// startMetricsBackend serves a Prometheus text metric naming id at
// /metrics on a free loopback port, until the test ends, and returns the
// port.
func startMetricsBackend(t *testing.T, id string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE promsd_backend_info gauge\npromsd_backend_info{backend=%q} 1\n", id)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// prometheus is a Prometheus server started for one test.
type prometheus struct {
	url  string
	logs *testenv.SyncBuffer
}

// startPrometheus runs the prometheus binary with config on a free
// loopback port, its storage in a temporary directory, until the test
// ends. Without the binary the test is skipped, or fails under CI.
func startPrometheus(t *testing.T, config string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("prometheus is not on PATH under CI (.ci/run installs the Debian package prometheus): %v", err)
		}
		t.Skip("prometheus is not on PATH: apt-get install prometheus to run this test")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	p := &prometheus{url: "http://" + addr, logs: &testenv.SyncBuffer{}}
	proc, err := childproc.Start(bin, []string{
		"--config.file=" + file,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, p.logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if proc.Stop(syscall.SIGTERM, 10*time.Second) {
			t.Errorf("prometheus (pid %d) did not stop on SIGTERM within 10s: killed", proc.PID())
		}
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", p.logs)
		}
	})
	testenv.Eventually(t, 60*time.Second, func() bool {
		if !proc.Running() {
			t.Fatalf("prometheus exited: %v\n%s", proc.State(), p.logs)
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "prometheus at %s not ready; logs:\n%s", addr, p.logs)
	return p
}

// promTarget is an active target as Prometheus's /api/v1/targets shows it.
type promTarget struct {
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Discovered map[string]string `json:"discoveredLabels"`
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

// targets returns the active targets of job, by scrape URL.
func (p *prometheus) targets(t *testing.T, job string) map[string]promTarget {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/targets?state=active", &out)
	ts := map[string]promTarget{}
	for _, tg := range out.Data.ActiveTargets {
		if tg.ScrapePool == job {
			ts[tg.ScrapeURL] = tg
		}
	}
	return ts
}

// query returns the label sets of the instant vector expr evaluates to.
func (p *prometheus) query(t *testing.T, expr string) []map[string]string {
	t.Helper()
	var out struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+expr, &out)
	var ms []map[string]string
	for _, r := range out.Data.Result {
		ms = append(ms, r.Metric)
	}
	return ms
}

func (p *prometheus) get(t *testing.T, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("prometheus GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("prometheus GET %s: %v", path, err)
	}
}

// waitTargets waits until the targets of job are exactly want (scrape
// URLs), each scraped successfully, and returns them.
func (p *prometheus) waitTargets(t *testing.T, job string, want []string, within time.Duration) map[string]promTarget {
	t.Helper()
	var got map[string]promTarget
	testenv.Eventually(t, within, func() bool {
		got = p.targets(t, job)
		if len(got) != len(want) {
			return false
		}
		for _, u := range want {
			if got[u].Health != "up" {
				return false
			}
		}
		return true
	}, "job %s: targets %v, want %v all up", job, lazyString(func() string { return fmt.Sprint(got) }), want)
	return got
}

// promConfig is the test's Prometheus configuration: a job "netsel" on
// the registrar's HTTP service discovery, a job "netsel-serving" that
// drops instances in maintenance or draining by relabeling (the README's
// example), and with consul a job "netsel-consul" on its
// Consul-compatible API, all for service svc.
func promConfig(registrar, svc string, consul bool) string {
	c := fmt.Sprintf(`global:
  scrape_interval: %[3]s
  scrape_timeout: %[3]s
  evaluation_interval: %[3]s
scrape_configs:
  - job_name: netsel
    http_sd_configs:
      - url: http://%[1]s/v1/sd/prometheus?service=%[2]s
        refresh_interval: %[3]s
    relabel_configs:
      - source_labels: [__meta_netsel_service]
        target_label: service
      - source_labels: [__meta_netsel_id]
        target_label: netsel_id
  - job_name: netsel-serving
    http_sd_configs:
      - url: http://%[1]s/v1/sd/prometheus?service=%[2]s
        refresh_interval: %[3]s
    relabel_configs:
      - source_labels: [__meta_netsel_state]
        regex: maintenance|draining
        action: drop
`, registrar, svc, promSDRefresh)
	if consul {
		c += fmt.Sprintf(`  - job_name: netsel-consul
    consul_sd_configs:
      - server: %[1]s
        scheme: http
        services: [%[2]s]
        refresh_interval: %[3]s
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: service
`, registrar, svc, promSDRefresh)
	}
	return c
}

// consulSDSupported reports, as an error, why the prometheus on PATH
// cannot run a consul_sd_configs job: Debian builds it without Consul
// discovery ("field consul_sd_configs not found"). It asks the promtool
// beside it.
func consulSDSupported() error {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		return err
	}
	promtool := filepath.Join(filepath.Dir(prom), "promtool")
	if _, err := os.Stat(promtool); err != nil {
		return fmt.Errorf("no promtool beside %s to tell whether it has Consul discovery: %w", prom, err)
	}
	dir, err := os.MkdirTemp("", "promsd")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "consul.yml")
	conf := "scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n      - server: 127.0.0.1:1\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(promtool, "check", "config", file).CombinedOutput(); err != nil {
		return fmt.Errorf("this prometheus has no Consul discovery (Debian's package disables it): %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// TestPrometheusDiscovers: a real Prometheus with an http_sd_configs job on
// the registrar discovers and scrapes every registered instance, with the
// labels relabeling copies from __meta_netsel_*, and drops a deregistered
// one within a refresh and a scrape interval (and a margin for a loaded
// machine). With a Prometheus built with Consul discovery, a consul_sd_configs job on the
// registrar's Consul-compatible API does the same.
func TestPrometheusDiscovers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the stack and a Prometheus server")
	}
	f := startStack(t)
	const svc = "promsd-web"
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var urls []string
	for _, id := range []string{"a", "b", "c"} {
		port := startMetricsBackend(t, id)
		reg := client.Registration{Service: svc, ID: id, Address: "127.0.0.1", Port: port, TTL: 10 * time.Minute,
			Tags: []string{"prod", "a-b.c"}, Meta: map[string]string{"team": "edge", "ü": id}}
		if _, err := c.Register(ctx, reg); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	}
	// The consul_sd_configs half needs a Prometheus built with Consul
	// discovery: Debian's is not; .ci/run installs Prometheus's own
	// build with go install.
	consul, noConsul := true, ""
	if err := consulSDSupported(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("under CI the prometheus on PATH must have Consul discovery (.ci/run go-installs it): %v", err)
		}
		consul, noConsul = false, err.Error()
	}
	prom := startPrometheus(t, promConfig(f.registrar, svc, consul))

	got := prom.waitTargets(t, "netsel", urls, 60*time.Second)
	for u, tg := range got {
		if tg.Labels["service"] != svc || tg.Labels["netsel_id"] == "" {
			t.Errorf("target %s: labels %v, want service=%s and a netsel_id from relabeling", u, tg.Labels, svc)
		}
		d := tg.Discovered
		if d["__meta_netsel_tag_a_b_c"] != "true" || d["__meta_netsel_meta__"] != tg.Labels["netsel_id"] ||
			d["__meta_netsel_tags"] != ",prod,a-b.c," || d["__meta_netsel_state"] != "passing" {
			t.Errorf("target %s: discovered labels %v, want the sanitized tag and meta labels", u, d)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		ids := map[string]bool{}
		for _, m := range prom.query(t, `promsd_backend_info{job="netsel",service="`+svc+`"}`) {
			ids[m["backend"]+"="+m["netsel_id"]] = true
		}
		return len(ids) == 3 && ids["a=a"] && ids["b=b"] && ids["c=c"]
	}, "prometheus did not store the three backends' samples with their netsel_id")

	// A job that drops maintenance by relabeling drops a; "netsel" keeps
	// it.
	prom.waitTargets(t, "netsel-serving", urls, dropWithin)
	if err := c.Maintenance(ctx, svc, "a", "test"); err != nil {
		t.Fatal(err)
	}
	prom.waitTargets(t, "netsel-serving", urls[1:], dropWithin)
	if err := c.EndMaintenance(ctx, svc, "a"); err != nil {
		t.Fatal(err)
	}
	prom.waitTargets(t, "netsel-serving", urls, dropWithin)

	// Deregister b: Prometheus drops it within dropWithin.
	if err := c.Deregister(ctx, svc, "b"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rest := slices.DeleteFunc(slices.Clone(urls), func(u string) bool { return u == urls[1] })
	prom.waitTargets(t, "netsel", rest, dropWithin)
	t.Logf("http_sd: deregistered instance dropped after %v", time.Since(start))

	t.Run("consul_sd", func(t *testing.T) {
		if !consul {
			t.Skip(noConsul)
		}
		prom.waitTargets(t, "netsel-consul", rest, 60*time.Second)
		if err := c.Deregister(ctx, svc, "c"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		prom.waitTargets(t, "netsel-consul", rest[:1], dropWithin)
		prom.waitTargets(t, "netsel", rest[:1], dropWithin)
		t.Logf("consul_sd: deregistered instance dropped after %v", time.Since(start))
	})
}
