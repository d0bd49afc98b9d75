package multihost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/netsel/netsel/build/bench/hosts"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// Ports of BenchmarkHosts: the iperf3 server and the example service's HTTP
// port on host B; the anchors' frontends on host A's loopback, as its VIPs
// are local on A's loopback.
const (
	benchIperfPort   = 5201
	benchHTTPPort    = 18080
	benchCopyIperf   = "127.0.0.1:15201" // Go io.Copy proxy to B's iperf3
	benchCopyHTTP    = "127.0.0.1:18081" // Go io.Copy proxy to B's HTTP port
	benchBufHTTP     = "127.0.0.1:18082" // the same, copying through a buffer
	benchHAProxyHTTP = "127.0.0.1:18000" // HAProxy mode tcp to B's HTTP port
)

// BenchmarkHosts is issue 10's side-by-side run across a veth link: three
// hosts (network namespaces on one bridge), an etcd member and a NetSel
// agent on each; clients on host A, servers on host B. Each round measures,
// back to back and in an order reversed every other round, iperf3 through
// A's VIP proxy vs through a Go io.Copy proxy on A (and direct), and wrk
// through A's VIP vs through HAProxy mode tcp on A (and a Go io.Copy proxy
// and direct), all to the same server on B. Then it times registrations at
// A's registrar until B's DNS has them in its SRV answer. It reports
// medians and the medians of per-round ratios; run it once:
//
//	go test ./multihost -run '^$' -bench Hosts -benchtime 1x
//
// HOSTBENCH_ROUNDS (5), HOSTBENCH_IPERF_SECS (5), HOSTBENCH_WRK_SECS (5),
// HOSTBENCH_WRK_CONNS (50) and HOSTBENCH_FRESH (200 registrations) set its
// size; HOSTBENCH_PERF=dir records each proxy's wrk of round 1 with perf
// record -g into dir. build/bench/hosts/run.sh wraps it.
func BenchmarkHosts(b *testing.B) {
	for _, tool := range []string{"iperf3", "wrk", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("BenchmarkHosts needs %s: %v", tool, err)
		}
	}
	rounds := hosts.EnvInt("HOSTBENCH_ROUNDS", 5)
	iperfN := hosts.EnvInt("HOSTBENCH_IPERF_SECS", 5)
	iperfSecs := strconv.Itoa(iperfN)
	wrkN := hosts.EnvInt("HOSTBENCH_WRK_SECS", 5)
	wrkDur := strconv.Itoa(wrkN) + "s"
	wrkConns := strconv.Itoa(hosts.EnvInt("HOSTBENCH_WRK_CONNS", 50))
	freshN := hosts.EnvInt("HOSTBENCH_FRESH", 200)

	nt := testenv.StartHosts(b, 3)
	etcd := testenv.StartEtcdOnHosts(b, nt.Hosts)
	ha, hb, hc := nt.Hosts[0], nt.Hosts[1], nt.Hosts[2]
	var agents []*testenv.HostProcess
	for _, h := range nt.Hosts {
		agents = append(agents, h.Start(b, bin.netsel, "agent", "-etcd", strings.Join(etcd.Endpoints(), ","),
			"-registrar", netip.AddrPortFrom(h.Addr(), registrarPort).String(),
			"-dns", dnsAddr, "-http", httpAddr, "-vip-cidr", vipCIDR,
			"-log-level", "warn", "-stop-timeout", "10s"))
	}
	cli := ha.HTTPClient()
	for _, h := range nt.Hosts {
		hcli := h.HTTPClient()
		testenv.Eventually(b, 60*time.Second, func() bool {
			code, _ := benchDo(hcli, http.MethodGet, benchRegistrar(h)+"/v1/services/none", "")
			return code == http.StatusNotFound || code == http.StatusOK
		}, "the registrar on %s does not answer", h.Addr())
	}

	// Servers on B: iperf3, and the example service (registered at B).
	bAddr := hb.Addr().String()
	hb.Start(b, "iperf3", "-s", "-B", bAddr, "-p", strconv.Itoa(benchIperfPort))
	hb.Start(b, bin.service, "-name", "web", "-id", "b", "-host", bAddr,
		"-http-port", strconv.Itoa(benchHTTPPort), "-registrar", benchRegistrar(hb), "-ttl", "60s", "-interval", "15s")
	code, body := benchDo(cli, http.MethodPost, benchRegistrar(ha)+"/v1/services/iperf/instances",
		fmt.Sprintf(`{"id":"b","address":%q,"port":%d,"ttl":"1h"}`, bAddr, benchIperfPort))
	if code != http.StatusOK && code != http.StatusCreated {
		b.Fatalf("register iperf at A: %d %s", code, body)
	}
	var reg api.RegisterResponse
	if err := json.Unmarshal([]byte(body), &reg); err != nil {
		b.Fatalf("register iperf at A: %v: %s", err, body)
	}
	iperfVIP := netip.AddrPortFrom(reg.VIP, uint16(reg.Port))
	var webVIP netip.AddrPort
	testenv.Eventually(b, 30*time.Second, func() bool {
		code, body := benchDo(cli, http.MethodGet, benchRegistrar(ha)+"/v1/services/web", "")
		var v api.ServiceView
		if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || len(v.Instances) != 1 {
			return false
		}
		webVIP = port(&v, "http")
		return webVIP.IsValid()
	}, "A's registrar does not list web")

	// Anchors on A, dialling B from A.
	for _, p := range []struct {
		listen, target string
		splice         bool
	}{
		{benchCopyIperf, netip.AddrPortFrom(hb.Addr(), benchIperfPort).String(), true},
		{benchCopyHTTP, netip.AddrPortFrom(hb.Addr(), benchHTTPPort).String(), true},
		{benchBufHTTP, netip.AddrPortFrom(hb.Addr(), benchHTTPPort).String(), false},
	} {
		ln, err := ha.Listen("tcp", p.listen)
		if err != nil {
			b.Fatal(err)
		}
		go hosts.CopyProxy(ln, ha.DialContext, p.target, p.splice)
	}
	cfg := filepath.Join(b.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(hosts.HAProxyTCP(benchHAProxyHTTP,
		netip.AddrPortFrom(hb.Addr(), benchHTTPPort).String())), 0o644); err != nil {
		b.Fatal(err)
	}
	haproxy := ha.Start(b, "haproxy", "-db", "-f", cfg)
	httpDirect := netip.AddrPortFrom(hb.Addr(), benchHTTPPort).String()
	for _, addr := range []string{iperfVIP.String(), webVIP.String(), benchHAProxyHTTP, benchCopyHTTP, benchBufHTTP} {
		testenv.Eventually(b, 30*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			c, err := ha.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, "nothing accepts on %s in host A", addr)
	}

	agentA := agents[0].PID()
	tcp := []benchCase{{"VIP proxy", iperfVIP.String(), agentA}, {"Go io.Copy proxy", benchCopyIperf, os.Getpid()},
		{"direct", netip.AddrPortFrom(hb.Addr(), benchIperfPort).String(), 0}}
	web := []benchCase{{"VIP proxy", webVIP.String(), agentA}, {"HAProxy mode tcp", benchHAProxyHTTP, haproxy.PID()},
		{"Go io.Copy proxy", benchCopyHTTP, os.Getpid()}, {"Go buffer copy proxy", benchBufHTTP, os.Getpid()},
		{"direct", httpDirect, 0}}
	ctx := context.Background()
	for _, c := range web { // warm-up
		ha.Command(ctx, "wrk", "-t2", "-c"+wrkConns, "-d1s", "http://"+c.addr+"/").Run()
	}
	perfDir := os.Getenv("HOSTBENCH_PERF") // perf record -g of each proxy in round 1
	gbps, rps, p99, cpu := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for r := range rounds {
		for k := range tcp {
			c := tcp[k]
			if r%2 == 1 {
				c = tcp[len(tcp)-1-k]
			}
			host, p, _ := net.SplitHostPort(c.addr)
			var out []byte
			var err error
			used := c.cpu(b, "", func() {
				for try := 0; try < 3; try++ { // the server may still be busy with the last test
					if out, err = ha.Command(ctx, "iperf3", "-c", host, "-p", p, "-t", iperfSecs, "-J").Output(); err == nil {
						break
					}
					time.Sleep(time.Second)
				}
			})
			g, perr := hosts.IperfGbps(out)
			if perr != nil {
				b.Fatalf("round %d, iperf3 %s: %v (%v)", r, c.name, perr, err)
			}
			gbps[c.name] = append(gbps[c.name], g)
			if c.pid != 0 { // CPU seconds per GB carried
				cpu["tcp "+c.name] = append(cpu["tcp "+c.name], used.Seconds()/(g*float64(iperfN)/8))
			}
		}
		for k := range web {
			c := web[k]
			if r%2 == 1 {
				c = web[len(web)-1-k]
			}
			var out []byte
			var err error
			perf := ""
			if r == 0 && perfDir != "" && c.pid != 0 {
				perf = filepath.Join(perfDir, strings.ReplaceAll(c.name, " ", "_")+".data")
			}
			used := c.cpu(b, perf, func() {
				out, err = ha.Command(ctx, "wrk", "-t2", "-c"+wrkConns, "-d"+wrkDur, "--latency", "http://"+c.addr+"/").Output()
			})
			if err != nil {
				b.Fatalf("round %d, wrk %s: %v\n%s", r, c.name, err, out)
			}
			w, err := hosts.ParseWrk(out)
			if err != nil {
				b.Fatalf("round %d, wrk %s: %v", r, c.name, err)
			}
			if w.Errors > 0 {
				b.Errorf("round %d, wrk %s: %d errors", r, c.name, w.Errors)
			}
			rps[c.name] = append(rps[c.name], w.RPS)
			p99[c.name] = append(p99[c.name], w.P99)
			if c.pid != 0 { // CPU µs per request
				cpu["http "+c.name] = append(cpu["http "+c.name], float64(used.Microseconds())/(w.RPS*float64(wrkN)))
			}
		}
		b.Logf("round %d: iperf3 Gbit/s %v; wrk req/s %v", r+1, hosts.Last(gbps), hosts.Last(rps))
	}

	from, from200 := benchFreshness(b, ha, hb, hc.Addr(), freshN)

	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| TCP, iperf3 -t %s, A → B | median Gbit/s | proxy CPU s/GB | per round (Gbit/s) | ratio (median of per-round) |\n| --- | ---: | ---: | --- | ---: |\n", iperfSecs)
	for _, c := range tcp {
		fmt.Fprintf(&sb, "| %s | %.2f | %s | %s | %s |\n", c.name, hosts.Median(gbps[c.name]), hosts.MedianText(cpu["tcp "+c.name], 3),
			hosts.Samples(gbps[c.name], 2), hosts.RatioText(gbps, c.name, "Go io.Copy proxy"))
	}
	fmt.Fprintf(&sb, "\n| HTTP, wrk -t2 -c%s -d%s, A → B | median req/s | median p99 ms | proxy CPU µs/req | per round (req/s) | ratio (median of per-round) |\n| --- | ---: | ---: | ---: | --- | ---: |\n", wrkConns, wrkDur)
	for _, c := range web {
		fmt.Fprintf(&sb, "| %s | %.0f | %.2f | %s | %s | %s |\n", c.name, hosts.Median(rps[c.name]), hosts.Median(p99[c.name]),
			hosts.MedianText(cpu["http "+c.name], 1), hosts.Samples(rps[c.name], 0), hosts.RatioText(rps, c.name, "HAProxy mode tcp"))
	}
	fmt.Fprintf(&sb, "\n| freshness, %d registrations at A, SRV at B | p50 | p99 | max |\n| --- | ---: | ---: | ---: |\n", len(from))
	for _, f := range []struct {
		name string
		d    []time.Duration
	}{{"from the POST's start", from}, {"from the POST's 200", from200}} {
		fmt.Fprintf(&sb, "| %s | %v | %v | %v |\n", f.name, hosts.Percentile(f.d, 50).Round(10*time.Microsecond),
			hosts.Percentile(f.d, 99).Round(10*time.Microsecond), hosts.Percentile(f.d, 100).Round(10*time.Microsecond))
	}
	b.Log(sb.String())
	b.ReportMetric(hosts.Median(hosts.Ratios(gbps["VIP proxy"], gbps["Go io.Copy proxy"])), "vip/copy-tcp")
	b.ReportMetric(hosts.Median(hosts.Ratios(rps["VIP proxy"], rps["HAProxy mode tcp"])), "vip/haproxy-http")
	b.ReportMetric(float64(hosts.Percentile(from, 99))/1e6, "fresh-p99-ms")
}

// benchFreshness registers n instances of service fresh, one at a time, at
// host a's registrar (address addr), and times each until host b's DNS has
// it in its SRV answer, polled in a tight loop from inside b: from the
// start of the POST and from its 200. It deregisters each after, so that
// the answer stays small.
func benchFreshness(tb testing.TB, a, b *testenv.Host, addr netip.Addr, n int) (from, from200 []time.Duration) {
	tb.Helper()
	cli := a.HTTPClient()
	url := benchRegistrar(a) + "/v1/services/fresh/instances"
	conn, err := b.DialContext(context.Background(), "udp", dnsAddr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	dc := &dns.Conn{Conn: conn}
	has := func(target string) bool {
		q := new(dns.Msg)
		q.SetQuestion("fresh.netsel.", dns.TypeSRV)
		conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if dc.WriteMsg(q) != nil {
			return false
		}
		for { // skip late answers to earlier queries
			m, err := dc.ReadMsg()
			if err != nil {
				return false
			}
			if m.Id != q.Id {
				continue
			}
			for _, rr := range m.Answer {
				if s, ok := rr.(*dns.SRV); ok && s.Target == target {
					return true
				}
			}
			return false
		}
	}
	for i := -1; i < n; i++ { // i = -1 creates the service; not timed
		id := fmt.Sprintf("f%d", i+1)
		start := time.Now()
		code, body := benchDo(cli, http.MethodPost, url,
			fmt.Sprintf(`{"id":%q,"address":%q,"port":%d,"ttl":"60s"}`, id, addr, 10000+i+1))
		ok := time.Now()
		if code != http.StatusOK && code != http.StatusCreated {
			tb.Fatalf("register fresh/%s at A: %d %s", id, code, body)
		}
		for !has(id + ".fresh.netsel.") {
			if time.Since(start) > 10*time.Second {
				tb.Fatalf("fresh/%s not in B's SRV answer 10 s after its registration", id)
			}
		}
		end := time.Now()
		if i >= 0 {
			from, from200 = append(from, end.Sub(start)), append(from200, end.Sub(ok))
			if code, body := benchDo(cli, http.MethodDelete, url+"/"+id, ""); code/100 != 2 {
				tb.Fatalf("deregister fresh/%s: %d %s", id, code, body)
			}
		}
	}
	return from, from200
}

// benchRegistrar is the URL of h's registrar.
func benchRegistrar(h *testenv.Host) string {
	return "http://" + netip.AddrPortFrom(h.Addr(), registrarPort).String()
}

// benchDo sends a request with a JSON body (none when empty) and returns
// the answer's status and body; status 0 and the error when it failed.
func benchDo(cli *http.Client, method, url, body string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cli.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// benchCase is one way from host A to host B: a proxy, whose process is
// pid, or direct (pid 0).
type benchCase struct {
	name, addr string
	pid        int
}

// cpu runs f and returns the CPU time c's process used meanwhile (none
// for direct), recording a profile of it into perf (perf record -g) and
// its counts of context switches and system calls into perf.stat when perf
// is not empty.
func (c benchCase) cpu(tb testing.TB, perf string, f func()) time.Duration {
	if c.pid == 0 {
		f()
		return 0
	}
	var recs []*exec.Cmd
	if perf != "" {
		pid := strconv.Itoa(c.pid)
		for _, args := range [][]string{{"record", "-q", "-F", "499", "-g", "-p", pid, "-o", perf},
			{"stat", "-x,", "-e", "task-clock,context-switches,raw_syscalls:sys_enter", "-p", pid, "-o", perf + ".stat"}} {
			rec := exec.Command("perf", args...)
			if err := rec.Start(); err != nil {
				tb.Logf("perf %s: %v", args[0], err)
				continue
			}
			recs = append(recs, rec)
		}
	}
	before, err := hosts.CPUTime(c.pid)
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	f()
	after, err := hosts.CPUTime(c.pid)
	if err != nil {
		tb.Fatalf("%s: %v", c.name, err)
	}
	for _, rec := range recs {
		rec.Process.Signal(os.Interrupt)
		rec.Wait()
	}
	return after - before
}
