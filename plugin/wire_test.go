package netsel

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestWireMatchesRegular asks the same questions of three CoreDNS servers on
// one etcd: one with netsel alone, which writes its hot answers in wire
// form; one with recordersFront (prometheus, errors, log), which wrap the
// writer only to record what passes, so that netsel answers in wire form
// there too; and one with regularFront, which gets every answer the regular
// way (dns.Msg through CoreDNS's ScrubWriter). The replies must be the
// same, but for the order of shuffled records and the compression of owner
// names, with and without a client's EDNS0 COOKIE in the query.
func TestWireMatchesRegular(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	regular, regularTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, e.etcd.URL), regularFront))
	chained, chainedTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, e.etcd.URL), recordersFront(t)))

	e.putService(t, "web", "127.77.0.1",
		catalog.Port{Name: "http", Port: 80, Protocol: "tcp"},
		catalog.Port{Name: "dns", Port: 53, Protocol: "udp"})
	e.putService(t, "v6", "fd00::77")
	e.putService(t, "many", "127.77.0.2")
	e.putService(t, "huge", "127.77.0.3")
	a := inst("web", "a", "127.0.0.10", 8080)
	a.Ports, a.Weight = map[string]int{"http": 8080, "dns": 5300}, 3
	e.putInstance(t, a, 0)
	e.putInstance(t, inst("web", "b", "2001:db8::1", 9090), 0)
	e.putInstance(t, inst("v6", "x", "2001:db8::2", 443), 0)
	for i := range 40 { // more than answerWire's shuffle array
		e.putInstance(t, inst("many", fmt.Sprintf("m%02d", i), fmt.Sprintf("127.0.1.%d", i+1), 8000+i), 0)
	}
	var rev int64
	for i := range 200 { // more than fits 512 bytes of UDP
		rev = e.putInstance(t, inst("huge", fmt.Sprintf("h%03d", i), fmt.Sprintf("127.0.2.%d", i%250+1), 8000), 0)
	}
	e.putService(t, "giant", "127.77.0.4")
	if r := putMany(t, e.etcd.Client, e.ks, "giant", "g", 3000); r > rev { // more than fit 64 KiB
		rev = r
	}
	for _, addr := range []string{e.udp, regular, chained} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			m := query(t, addr, "udp", "web.netsel.", dns.TypeSOA)
			return len(m.Ns) == 1 && int64(m.Ns[0].(*dns.SOA).Serial) >= rev
		}, "server %s did not reach revision %d", addr, rev)
	}

	tests := []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16 // EDNS0 buffer size; 0 sends no OPT record
		do    bool
		tcp   bool
		wire  bool // answered in wire form, so shorter: owners are compressed
		// cookie adds a client COOKIE option (RFC 7873), as resolvers
		// send, to the OPT record.
		cookie bool
	}{
		{"A", "web.netsel.", dns.TypeA, 0, false, false, true, false},
		{"A with mixed case", "wEb.NETSEL.", dns.TypeA, 0, false, false, true, false},
		{"AAAA", "v6.netsel.", dns.TypeAAAA, 0, false, false, true, false},
		{"AAAA of a v4 VIP is NODATA", "web.netsel.", dns.TypeAAAA, 0, false, false, false, false},
		{"SRV", "web.netsel.", dns.TypeSRV, 0, false, false, true, false},
		{"SRV with EDNS0 and DO", "Web.netsel.", dns.TypeSRV, 1232, true, false, true, false},
		{"A with a small EDNS0 buffer", "web.netsel.", dns.TypeA, 100, false, false, true, false},
		{"named port SRV", "_http._tcp.web.netsel.", dns.TypeSRV, 0, false, false, true, false},
		{"named port SRV of some instances", "_dns._udp.web.netsel.", dns.TypeSRV, 0, false, false, true, false},
		{"SRV of 40 instances over UDP is compressed the regular way", "many.netsel.", dns.TypeSRV, 4096, false, false, false, false},
		{"SRV of 40 instances over TCP", "many.netsel.", dns.TypeSRV, 0, false, true, true, false},
		{"SRV of 200 instances over UDP is truncated", "huge.netsel.", dns.TypeSRV, 0, false, false, false, false},
		{"SRV of 200 instances over UDP with EDNS0", "huge.netsel.", dns.TypeSRV, 4096, false, false, false, false},
		{"SRV of 200 instances over TCP", "huge.netsel.", dns.TypeSRV, 0, false, true, true, false},
		// Sampled sets: the same count of records, each with its glue,
		// compressed by the regular path only.
		{"SRV of 3000 instances over UDP", "giant.netsel.", dns.TypeSRV, 0, false, false, false, false},
		{"SRV of 3000 instances over UDP with EDNS0", "giant.netsel.", dns.TypeSRV, 1232, true, false, false, false},
		{"SRV of 3000 instances over TCP", "giant.netsel.", dns.TypeSRV, 0, false, true, false, false},
		{"A with a cookie", "web.netsel.", dns.TypeA, 1232, false, false, true, true},
		{"A with a cookie and DO over TCP", "web.netsel.", dns.TypeA, 1232, true, true, true, true},
		{"SRV with a cookie", "web.netsel.", dns.TypeSRV, 1232, false, false, true, true},
		{"named port SRV with a cookie", "_http._tcp.web.netsel.", dns.TypeSRV, 4096, true, false, true, true},
		{"SRV of 200 instances over UDP with a cookie", "huge.netsel.", dns.TypeSRV, 1232, false, false, false, true},
		{"instance A with a cookie", "a.web.netsel.", dns.TypeA, 1232, false, false, false, true},
		{"instance A", "a.web.netsel.", dns.TypeA, 0, false, false, false, false},
		{"unknown name", "nosuch.netsel.", dns.TypeA, 0, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ask := func(addr, proto string) (*dns.Msg, int) {
				m := new(dns.Msg)
				m.SetQuestion(tt.qname, tt.qtype)
				m.Id = 4242
				m.CheckingDisabled = true
				if tt.edns != 0 {
					m.SetEdns0(tt.edns, tt.do)
				}
				if tt.cookie {
					m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "24a7c1e2f3d40b56"})
				}
				co, err := dns.DialTimeout(proto, addr, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer co.Close()
				co.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 65535)
				if err := co.WriteMsg(m); err != nil {
					t.Fatalf("%s %s: %v", proto, addr, err)
				}
				n, err := co.Read(buf)
				if err != nil {
					t.Fatalf("%s %s: %v", proto, addr, err)
				}
				r := new(dns.Msg)
				if err := r.Unpack(buf[:n]); err != nil {
					t.Fatalf("%s %s: reply does not unpack: %v", proto, addr, err)
				}
				return r, n
			}
			wireAddr, chainedAddr, regularAddr, proto := e.udp, chained, regular, "udp"
			if tt.tcp {
				wireAddr, chainedAddr, regularAddr, proto = e.tcp, chainedTCP, regularTCP, "tcp"
			}
			want, wantLen := ask(regularAddr, proto)
			for _, s := range []struct{ name, addr string }{{"netsel alone", wireAddr}, {"behind recorders", chainedAddr}} {
				got, gotLen := ask(s.addr, proto)
				if tt.wire != (gotLen < wantLen) {
					t.Errorf("%s: reply of %d bytes, the regular one %d: want the wire form (shorter) %v", s.name, gotLen, wantLen, tt.wire)
				}
				sameReply(t, s.name, tt.tcp, tt.qname == "giant.netsel.", got, want)
			}
		})
	}
}

// sameReply compares got with the regular path's reply want: the same
// header, question and records, in any order; for a truncated reply or a
// sample (sampled), the same number of records only.
func sameReply(t *testing.T, name string, tcp, sampled bool, got, want *dns.Msg) {
	t.Helper()
	if got.MsgHdr != want.MsgHdr {
		t.Errorf("%s: header\n got %+v\nwant %+v", name, got.MsgHdr, want.MsgHdr)
	}
	if !slices.Equal(got.Question, want.Question) {
		t.Errorf("%s: question %v, want %v", name, got.Question, want.Question)
	}
	for _, s := range []struct {
		name      string
		got, want []dns.RR
	}{{"answer", got.Answer, want.Answer}, {"authority", got.Ns, want.Ns}, {"additional", got.Extra, want.Extra}} {
		if got.Truncated || sampled {
			// A shuffled set cut to fit, or a sample of 3000 (with TC over
			// UDP only): which records stay is chance.
			if len(s.got) != len(s.want) {
				t.Errorf("%s: truncated %s section has %d records, want %d", name, s.name, len(s.got), len(s.want))
			}
			continue
		}
		if g, w := sortedRRs(s.got), sortedRRs(s.want); !slices.Equal(g, w) {
			t.Errorf("%s: %s section\n got %q\nwant %q", name, s.name, g, w)
		}
	}
	if got.Truncated && tcp { // a sample over TCP is the answer
		t.Errorf("%s: TCP reply has TC set", name)
	}
}

// sortedRRs returns rrs as text, sorted: shuffled sets compare equal.
func sortedRRs(rrs []dns.RR) []string {
	s := make([]string, len(rrs))
	for i, rr := range rrs {
		s[i] = rr.String()
	}
	slices.Sort(s)
	return s
}

// TestWireReplyBuild checks replies built in wire form directly: each glue
// record follows its SRV record's order, the order changes between replies,
// a reply over the limit is refused, and replies built at once from pooled
// buffers do not mix.
func TestWireReplyBuild(t *testing.T) {
	const n = 5
	var (
		set  []srvRR
		inst []instRR
	)
	for i := range n {
		target := fmt.Sprintf("i%d.web.netsel.", i)
		srv := &dns.SRV{Hdr: dns.RR_Header{Name: "web.netsel.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
			Priority: srvPriority, Weight: 1, Port: uint16(8000 + i), Target: target}
		set = append(set, srvRR{srv: srv, inst: i, wire: packRR(srv, true)})
		inst = append(inst, instRR{addr: newAddrRR(target, 5, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})).withWire(false)})
	}
	set = compactSRV(set, inst)
	q := new(dns.Msg)
	q.SetQuestion("web.netsel.", dns.TypeSRV)

	build := func(limit int) (*dns.Msg, bool) {
		rep := replyPool.Get().(*wireReply)
		defer rep.release()
		pick := pickSRV(set, replyRoom(dns.MaxMsgSize, q.Question[0].Name, false), rep.order)
		rep.order = pick.order
		if !rep.build(q, nil, nil, set, pick, false, limit) {
			return nil, false
		}
		m := new(dns.Msg)
		if err := m.Unpack(rep.buf); err != nil {
			t.Errorf("reply does not unpack: %v", err)
			return nil, false
		}
		return m, true
	}
	if _, ok := build(100); ok {
		t.Error("a reply over the limit was built")
	}

	firsts := map[string]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 50 {
				m, ok := build(dns.MaxMsgSize)
				if !ok {
					t.Error("reply not built")
					return
				}
				if len(m.Answer) != n || len(m.Extra) != n {
					t.Errorf("%d answers, %d extra, want %d each", len(m.Answer), len(m.Extra), n)
					return
				}
				for i, rr := range m.Answer {
					srv := rr.(*dns.SRV)
					if srv.Hdr.Name != "web.netsel." || m.Extra[i].Header().Name != srv.Target {
						t.Errorf("record %d: SRV %v with glue %v", i, srv, m.Extra[i])
					}
				}
				mu.Lock()
				firsts[m.Answer[0].(*dns.SRV).Target] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(firsts) < 2 {
		t.Errorf("400 replies all began with %v: not shuffled", firsts)
	}
}
