package netsel

import (
	"strings"
	"testing"

	"github.com/coredns/caddy"

	"github.com/netsel/netsel/catalog"
)

// FuzzCorefile parses arbitrary netsel blocks: never a panic, and a block
// that parses has a usable configuration.
func FuzzCorefile(f *testing.F) {
	f.Add("")
	f.Add("netsel.")
	f.Add("netsel. 77.127.in-addr.arpa. {\n endpoint http://127.0.0.1:2379 http://127.0.0.2:2379\n prefix /netsel/\n ttl 5\n fallthrough\n}")
	f.Add("{\n tls cert.pem key.pem ca.pem\n credentials u p\n}")
	f.Add("127.77.0.0/16 {\n ttl 86401\n}")
	f.Add("{\n prefix netsel\n}")
	f.Add("{\n endpoint ftp://x\n}")
	f.Add("{\n nope\n}")
	f.Add("{\n fallthrough a. b.\n ttl -1\n}")
	f.Fuzz(func(t *testing.T, block string) {
		c := caddy.NewTestController("dns", "netsel "+block)
		n, cfg, err := parse(c)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("empty error for %q", block)
			}
			return
		}
		if n == nil {
			t.Fatalf("block %q parsed into nothing", block)
		}
		for _, z := range n.Zones {
			if !strings.HasSuffix(z, ".") || strings.ToLower(z) != z {
				t.Fatalf("block %q parsed into zone %q, not lower-case and fully qualified", block, z)
			}
		}
		if _, err := catalog.NewKeyspace(cfg.Prefix); err != nil || cfg.Prefix == "" {
			t.Fatalf("block %q parsed into a bad prefix %q: %v", block, cfg.Prefix, err)
		}
		if len(cfg.Endpoints) == 0 {
			t.Fatalf("block %q parsed into no endpoints", block)
		}
	})
}
