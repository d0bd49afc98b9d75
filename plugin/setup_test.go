package netsel

import (
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/netsel/netsel/internal/testenv"
)

func TestDirectiveOrder(t *testing.T) {
	i, j := slices.Index(dnsserver.Directives, "netsel"), slices.Index(dnsserver.Directives, "etcd")
	if i < 0 || j != i+1 {
		t.Errorf("netsel at %d, etcd at %d: want netsel right before etcd", i, j)
	}
	before := len(dnsserver.Directives)
	addDirective("netsel", "etcd")
	if len(dnsserver.Directives) != before {
		t.Error("addDirective added netsel twice")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		input     string
		zones     []string
		endpoints []string
		prefix    string
		ttl       uint32
		fall      []string
		locality  string
		err       string // substring of the error; "" for none
	}{
		{input: "netsel", zones: []string{"netsel."}, endpoints: []string{DefaultEndpoint}, prefix: "/netsel/", ttl: 5},
		{input: "netsel example.org 127.77.0.0/16", zones: []string{"example.org.", "77.127.in-addr.arpa."}, endpoints: []string{DefaultEndpoint}, prefix: "/netsel/", ttl: 5},
		{input: `netsel netsel. {
			endpoint http://10.0.0.1:2379 https://10.0.0.2:2379
			prefix /prod/netsel/
			ttl 30
			username u
			password p
			fallthrough example.org
		}`, zones: []string{"netsel."}, endpoints: []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}, prefix: "/prod/netsel/", ttl: 30, fall: []string{"example.org."}},
		{input: "netsel {\n credentials u p\n ttl 0\n}", zones: []string{"netsel."}, endpoints: []string{DefaultEndpoint}, prefix: "/netsel/", ttl: 0},
		{input: "netsel {\n locality eu-west-1a\n}", zones: []string{"netsel."}, endpoints: []string{DefaultEndpoint}, prefix: "/netsel/", ttl: 5, locality: "eu-west-1a"},
		{input: "netsel {\n bogus 1\n}", err: "unknown option 'bogus'"},
		{input: "netsel {\n ttl five\n}", err: `ttl "five"`},
		{input: "netsel {\n ttl -1\n}", err: `ttl "-1"`},
		{input: "netsel {\n ttl 86401\n}", err: `ttl "86401"`},
		{input: "netsel {\n ttl\n}", err: "ttl needs one value"},
		{input: "netsel {\n endpoint\n}", err: "endpoint needs"},
		{input: "netsel {\n endpoint 127.0.0.1:2379\n}", err: `endpoint "127.0.0.1:2379"`},
		{input: "netsel {\n endpoint ftp://x\n}", err: `endpoint "ftp://x"`},
		{input: "netsel {\n endpoint http://:2379\n}", err: "has no host"},
		{input: "netsel {\n endpoint http://h:99999\n}", err: "not in 1-65535"},
		{input: "netsel {\n endpoint http://127.0.0.1\n}", err: "needs host:port"},
		{input: "netsel {\n prefix netsel\n}", err: "prefix"},
		{input: "netsel {\n prefix /netsel\n}", err: "prefix"},
		{input: "netsel {\n prefix\n}", err: "prefix needs"},
		{input: "netsel {\n prefix /a/ /b/\n}", err: "prefix takes one"},
		{input: "netsel {\n username u\n}", err: "username and password"},
		{input: "netsel {\n credentials u\n}", err: "credentials"},
		{input: "netsel {\n tls /nonexistent/cert /nonexistent/key /nonexistent/ca\n}", err: "tls"},
		{input: "netsel\nnetsel", err: "only be used once"},
		{input: "netsel bad..zone", err: "not a valid domain name"},
		{input: "netsel {\n locality\n}", err: "locality takes one"},
		{input: "netsel {\n locality a b\n}", err: "locality takes one"},
		{input: "netsel {\n locality Az1\n}", err: `locality: "Az1" is not a DNS label`},
		{input: "netsel {\n locality eu-1.a\n}", err: `locality: "eu-1.a" is not a DNS label`},
	}
	for _, tt := range tests {
		c := caddy.NewTestController("dns", tt.input)
		c.ServerBlockKeys = []string{"."}
		n, cfg, err := parse(c)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want one containing %q", tt.input, err, tt.err)
			} else if tt.err != "only be used once" && !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("%q: error %v does not name the line", tt.input, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.input, err)
			continue
		}
		if !slices.Equal(n.Zones, tt.zones) || !slices.Equal(cfg.Endpoints, tt.endpoints) || cfg.Prefix != tt.prefix || n.ttl != tt.ttl || !slices.Equal(n.Fall.Zones, tt.fall) {
			t.Errorf("%q: zones %v endpoints %v prefix %q ttl %d fall %v; want %v %v %q %d %v",
				tt.input, n.Zones, cfg.Endpoints, cfg.Prefix, n.ttl, n.Fall.Zones, tt.zones, tt.endpoints, tt.prefix, tt.ttl, tt.fall)
		}
		if n.locality != tt.locality {
			t.Errorf("%q: locality %q, want %q", tt.input, n.locality, tt.locality)
		}
	}
}

// TestCorefileErrors checks that a whole CoreDNS refuses to start on a bad
// block and says which option and line.
func TestCorefileErrors(t *testing.T) {
	for _, tt := range []struct{ block, want string }{
		{"netsel {\n        nope\n    }", "unknown option 'nope'"},
		{"netsel {\n        ttl x\n    }", `ttl "x"`},
		{"netsel {\n        endpoint not-a-url\n    }", `endpoint "not-a-url"`},
		{"netsel {\n        prefix netsel/\n    }", "prefix"},
		{"netsel {\n        locality -a\n    }", "locality"},
	} {
		err := testenv.CoreDNSError(corefile(tt.block, ""))
		if err == nil {
			t.Errorf("%q: CoreDNS started", tt.block)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.want) || !strings.Contains(msg, "plugin/netsel") || !strings.Contains(msg, "Corefile:4") {
			t.Errorf("%q: error %q, want plugin/netsel, Corefile:4 and %q", tt.block, msg, tt.want)
		}
	}
}
