package netsel

import (
	"bufio"
	"fmt"
	golog "log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
)

// recordersFront are the plugins operators run before netsel that wrap the
// writer only to record what passes: netsel answers in wire form behind
// them. The log rule logs denials only, to keep test output short, but
// wraps the writer for every query.
func recordersFront(t testing.TB) string {
	return "prometheus " + testenv.FreeAddr(t) + "\n    errors\n    log . {\n        class denial\n    }"
}

// TestWireBehindRecorders asks CoreDNS with prometheus, errors, bufsize and
// log before netsel (as operators run it), over UDP and TCP, with and without a
// client COOKIE: every service A and SRV question is answered in wire form
// (its answer's owner is a compression pointer to the question, which the
// regular path does not write), and each plugin still records it right —
// prometheus counts one NOERROR response of the reply's size (without the
// TCP length prefix, as for a reply written as a message), log logs its
// rcode, flags and size; a client cookie is not echoed, as on the regular
// path and from CoreDNS's hosts plugin on the same server.
func TestWireBehindRecorders(t *testing.T) {
	logs := captureLog(t)
	metricsAddr := testenv.FreeAddr(t)
	e := startEnv(t, defaultBlock, "prometheus "+metricsAddr+`
    errors
    bufsize 1232
    log . "query {>id} {type} {name} {proto} {rcode} {>rflags} {rsize}"
    hosts /dev/null hoststest. {
        127.0.0.5 h.hoststest.
    }`)
	e.putService(t, "web", "127.77.0.1")
	e.putInstance(t, inst("web", "a", "127.0.0.10", 8080), 0)
	e.putInstance(t, inst("web", "b", "2001:db8::1", 9090), 0)
	e.waitFor(t, 10*time.Second, "web.netsel.", dns.TypeSRV, func(m *dns.Msg) bool { return len(m.Answer) == 2 }, "instances not served")

	hits := 0
	for i, q := range []struct {
		qname  string
		qtype  uint16
		proto  string
		cookie bool
	}{
		{"web.netsel.", dns.TypeA, "udp", false},
		{"web.netsel.", dns.TypeA, "tcp", false},
		{"web.netsel.", dns.TypeA, "udp", true},
		{"web.netsel.", dns.TypeA, "tcp", true},
		{"web.netsel.", dns.TypeSRV, "udp", true},
		{"web.netsel.", dns.TypeSRV, "tcp", false},
		{"_default._tcp.web.netsel.", dns.TypeSRV, "udp", true},
	} {
		name := fmt.Sprintf("%s %s over %s, cookie %v", q.qname, dns.TypeToString[q.qtype], q.proto, q.cookie)
		m := new(dns.Msg)
		m.SetQuestion(q.qname, q.qtype)
		m.Id = uint16(5000 + i)
		m.SetEdns0(1232, false)
		if q.cookie {
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "24a7c1e2f3d40b56"}}
		}
		addr := e.udp
		if q.proto == "tcp" {
			addr = e.tcp
		}
		before := scrape(t, metricsAddr)
		raw, reply := rawExchange(t, addr, q.proto, m)
		if reply.Rcode != dns.RcodeSuccess || len(reply.Answer) == 0 {
			t.Fatalf("%s: no answer:\n%v", name, reply)
		}
		if wireForm(raw) {
			hits++
		} else {
			t.Errorf("%s: not answered in wire form", name)
		}
		if hasCookie(reply) {
			t.Errorf("%s: COOKIE in the reply; CoreDNS answers none", name)
		}

		size := float64(len(raw))
		typ := dns.TypeToString[q.qtype]
		for _, c := range []struct {
			metric string
			labels []string
			want   float64
		}{
			{"coredns_dns_requests_total", []string{`proto="` + q.proto + `"`, `type="` + typ + `"`}, 1},
			{"coredns_dns_responses_total", []string{`rcode="NOERROR"`}, 1},
			{"coredns_dns_response_size_bytes_sum", []string{`proto="` + q.proto + `"`}, size},
			{"coredns_dns_response_size_bytes_count", []string{`proto="` + q.proto + `"`}, 1},
			{"coredns_netsel_requests_total", []string{`type="` + typ + `"`, `result="answer"`}, 1},
		} {
			var got float64
			testenv.Eventually(t, 5*time.Second, func() bool {
				got = scrape(t, metricsAddr).sum(c.metric, c.labels...) - before.sum(c.metric, c.labels...)
				return got == c.want
			}, "%s: %s%v moved by %v, want %v", name, c.metric, c.labels, lazy(func() string { return fmt.Sprint(got) }), c.want)
		}

		want := fmt.Sprintf("query %d %s %s %s NOERROR qr,aa,rd %d", m.Id, typ, q.qname, q.proto, len(raw))
		testenv.Eventually(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), want+"\n") },
			"%s: log has no line %q; log:\n%v", name, want, logs)
	}
	t.Logf("%d questions answered in wire form behind prometheus, errors and log", hits)

	// CoreDNS's own answer to a cookie, from hosts on the same server.
	m := new(dns.Msg)
	m.SetQuestion("h.hoststest.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "24a7c1e2f3d40b56"}}
	if r := exchange(t, e.udp, "udp", m); len(r.Answer) != 1 || r.IsEdns0() == nil || hasCookie(r) {
		t.Errorf("hosts does not answer as this test assumes (one A, an OPT without COOKIE):\n%v", r)
	}
}

// TestCacheInFront: behind the cache plugin, netsel answers through
// WriteMsg (the regular way), which the cache stores: the second question
// is a cache hit, the reply as the first, and the cache never warns that it
// was written bytes it cannot cache.
func TestCacheInFront(t *testing.T) {
	logs := captureLog(t)
	metricsAddr := testenv.FreeAddr(t)
	e := startEnv(t, defaultBlock, "prometheus "+metricsAddr+"\n    cache 30")
	e.putService(t, "web", "127.77.0.1")
	e.putInstance(t, inst("web", "a", "127.0.0.10", 8080), 0)
	e.waitFor(t, 10*time.Second, "web.netsel.", dns.TypeSRV, func(m *dns.Msg) bool { return len(m.Answer) == 1 }, "instance not served")

	for _, proto := range []string{"udp", "tcp"} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			name := fmt.Sprintf("web.netsel. %s over %s", dns.TypeToString[qtype], proto)
			addr := e.udp
			if proto == "tcp" {
				addr = e.tcp
			}
			m := new(dns.Msg)
			m.SetQuestion("web.netsel.", qtype)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "24a7c1e2f3d40b56"}}
			first := exchange(t, addr, proto, m)
			before := scrape(t, metricsAddr)
			second := exchange(t, addr, proto, m)
			var hits float64
			testenv.Eventually(t, 5*time.Second, func() bool {
				hits = scrape(t, metricsAddr).sum("coredns_cache_hits_total") - before.sum("coredns_cache_hits_total")
				return hits == 1
			}, "%s: %v cache hits, want 1", name, lazy(func() string { return fmt.Sprint(hits) }))
			if len(first.Answer) != 1 || len(second.Answer) != 1 || first.Answer[0].String() != second.Answer[0].String() && !sameButTTL(first.Answer[0], second.Answer[0]) {
				t.Errorf("%s: cached reply\n%v\nthen\n%v", name, first, second)
			}
			if hasCookie(second) {
				t.Errorf("%s: COOKIE in the cached reply", name)
			}
		}
	}
	if strings.Contains(logs.String(), "Caching called with Write") {
		t.Errorf("the cache was written bytes:\n%v", logs)
	}
}

// sameButTTL reports whether a and b differ at most in their TTLs.
func sameButTTL(a, b dns.RR) bool {
	a, b = dns.Copy(a), dns.Copy(b)
	a.Header().Ttl, b.Header().Ttl = 0, 0
	return a.String() == b.String()
}

// captureLog sends the standard logger's output, which CoreDNS's plugins
// log through, to the returned buffer until the test ends, and to the test's
// log if it failed.
func captureLog(t *testing.T) *testenv.SyncBuffer {
	buf := new(testenv.SyncBuffer)
	golog.SetOutput(buf)
	t.Cleanup(func() {
		golog.SetOutput(os.Stderr)
		if t.Failed() {
			t.Logf("log:\n%s", buf)
		}
	})
	return buf
}

// rawExchange sends m over proto and returns the reply's bytes and message.
func rawExchange(t *testing.T, addr, proto string, m *dns.Msg) ([]byte, *dns.Msg) {
	t.Helper()
	co, err := dns.DialTimeout(proto, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	co.SetDeadline(time.Now().Add(3 * time.Second))
	if err := co.WriteMsg(m); err != nil {
		t.Fatalf("%s %s: %v", proto, addr, err)
	}
	buf := make([]byte, 65535)
	var n int
	if proto == "tcp" {
		n, err = co.Read(buf) // dns.Conn strips the length prefix
	} else {
		n, err = co.Conn.Read(buf)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", proto, addr, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("%s %s: reply does not unpack: %v", proto, addr, err)
	}
	return buf[:n], r
}

// wireForm reports whether reply, with one question and an answer, was
// written by answerWire: its first answer's owner is a compression pointer
// to the question, where the regular path writes small replies
// uncompressed.
func wireForm(reply []byte) bool {
	if len(reply) < 12 {
		return false
	}
	i := 12 // the question's name: labels up to the root
	for i < len(reply) && reply[i] != 0 {
		i += int(reply[i]) + 1
	}
	i += 1 + 4 // the root label, type, class
	return i+2 <= len(reply) && reply[i] == 0xc0 && reply[i+1] == 12
}

func hasCookie(m *dns.Msg) bool {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if o.Option() == dns.EDNS0COOKIE {
				return true
			}
		}
	}
	return false
}

// metricsText is a scrape of a Prometheus endpoint: each sample's name and
// labels, as written, to its value.
type metricsText map[string]float64

// scrape reads the prometheus plugin's endpoint at addr.
func scrape(t testing.TB, addr string) metricsText {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := metricsText{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sum adds up the samples of metric that have every one of labels
// (`name="value"`).
func (mt metricsText) sum(metric string, labels ...string) float64 {
	total := 0.0
	for k, v := range mt {
		if k != metric && !strings.HasPrefix(k, metric+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}
