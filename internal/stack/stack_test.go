package stack_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/stack"
	"github.com/netsel/netsel/internal/testenv"
)

// startStack starts a stack of DNS only over etcd at url.
func startStack(t *testing.T, url string, dnsCfg *stack.DNS) {
	t.Helper()
	s, err := stack.Start(context.Background(), stack.Config{
		Etcd:     stack.Etcd{Endpoints: []string{url}},
		Keyspace: catalog.MustKeyspace(catalog.DefaultPrefix),
		DNS:      dnsCfg,
		Logger:   slog.New(slog.NewTextHandler(testenv.LogWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

// TestDNSForward: with upstreams, a name outside the zone is answered by
// them (and cached); without, it is refused, as before.
func TestDNSForward(t *testing.T) {
	e := testenv.StartEtcd(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := pc.LocalAddr().String()
	asked := testenv.StartUpstream(t, pc)
	for _, tc := range []struct {
		name    string
		forward []string
		rcode   int
	}{
		{"no upstream", nil, dns.RcodeRefused},
		{"upstream", []string{up}, dns.RcodeSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.FreeAddr(t)
			startStack(t, e.URL, &stack.DNS{Addr: addr, Zone: "netsel.", Forward: tc.forward})
			before := asked.Load()
			for range 3 {
				m := new(dns.Msg)
				m.SetQuestion("www.example.org.", dns.TypeA)
				var in *dns.Msg
				testenv.Eventually(t, 10*time.Second, func() bool {
					var err error
					in, _, err = (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
					return err == nil
				}, "DNS server at %s does not answer", addr)
				if in.Rcode != tc.rcode {
					t.Fatalf("www.example.org.: rcode %s, want %s", dns.RcodeToString[in.Rcode], dns.RcodeToString[tc.rcode])
				}
				if tc.rcode == dns.RcodeSuccess && (len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != testenv.UpstreamAnswer) {
					t.Fatalf("forwarded answer %v, want 192.0.2.1", in.Answer)
				}
			}
			if got := asked.Load() - before; tc.forward != nil && got != 1 {
				t.Errorf("the upstream was asked %d times for three questions, want once (cache)", got)
			}
			// The zone is still the plugin's: a missing service is
			// NXDOMAIN from NetSel (once its index is synced), never
			// forwarded.
			before = asked.Load()
			m := new(dns.Msg)
			m.SetQuestion("nosuch.netsel.", dns.TypeA)
			testenv.Eventually(t, 10*time.Second, func() bool {
				in, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, addr)
				return err == nil && in.Rcode == dns.RcodeNameError
			}, "nosuch.netsel. is not NXDOMAIN")
			if asked.Load() != before {
				t.Error("a name in the zone was forwarded")
			}
		})
	}
}

// TestResolvConfUpstreams: the host's nameservers, leaving out the DNS
// server itself so it never forwards to itself.
func TestResolvConfUpstreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 127.0.0.1\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		self string
		want []string
	}{
		{"127.0.0.1:53", []string{"127.0.0.53:53", "192.0.2.53:53"}},
		{"127.0.0.1:5353", []string{"127.0.0.1:53", "127.0.0.53:53", "192.0.2.53:53"}},
		{":53", []string{"192.0.2.53:53"}},
		{"0.0.0.0:53", []string{"192.0.2.53:53"}},
	} {
		got, err := stack.ResolvConfUpstreams(path, tc.self)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("self %s: %v, %v; want %v", tc.self, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("self %s: %v, want %v", tc.self, got, tc.want)
			}
		}
	}
	if err := os.WriteFile(path, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := stack.ResolvConfUpstreams(path, "127.0.0.1:53"); err == nil {
		t.Errorf("only itself as nameserver: %v, want an error", got)
	}
}
