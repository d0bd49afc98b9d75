package netsel

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
)

// TestReservedEDNSFlags: a reply's OPT record carries the DO bit the query
// had and none of the reserved (Z) flag bits, which RFC 6891 says must be
// zero — over the precomputed path and the regular one (a wrapped writer,
// an NXDOMAIN), UDP and TCP.
func TestReservedEDNSFlags(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	regular, regularTCP := testenv.StartCoreDNS(t, corefile(fmt.Sprintf(defaultBlock, e.etcd.URL), regularFront))
	e.putService(t, "web", "127.77.0.1")
	e.putInstance(t, inst("web", "a", "127.0.0.10", 8080), 0)
	for _, addr := range []string{e.udp, regular} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			m := query(t, addr, "udp", "web.netsel.", dns.TypeA)
			return m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1
		}, "server %s does not answer web.netsel.", addr)
	}
	for _, srv := range []struct{ name, udp, tcp string }{
		{"precomputed path", e.udp, e.tcp},
		{"regular path", regular, regularTCP},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			addr := srv.udp
			if proto == "tcp" {
				addr = srv.tcp
			}
			for _, qname := range []string{"web.netsel.", "nosuch.netsel."} {
				for _, do := range []bool{false, true} {
					m := new(dns.Msg)
					m.SetQuestion(qname, dns.TypeA)
					m.SetEdns0(1232, do)
					m.IsEdns0().Hdr.Ttl |= 0x4000 | 0x0001 // reserved Z bits
					r := exchange(t, addr, proto, m)
					opt := r.IsEdns0()
					if opt == nil {
						t.Errorf("%s %s %s do=%v: no OPT in the reply", srv.name, proto, qname, do)
						continue
					}
					if z := opt.Hdr.Ttl & 0x7fff; z != 0 {
						t.Errorf("%s %s %s do=%v: reserved EDNS flag bits %#04x in the reply", srv.name, proto, qname, do, z)
					}
					if opt.Do() != do || opt.Version() != 0 {
						t.Errorf("%s %s %s: DO %v version %d, want DO %v version 0", srv.name, proto, qname, opt.Do(), opt.Version(), do)
					}
				}
			}
		}
	}
}
