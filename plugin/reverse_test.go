package netsel

import (
	"net/netip"
	"testing"
)

func TestReversePrefix(t *testing.T) {
	tests := []struct {
		qname string
		want  string // "" when not a partial reverse name
	}{
		{"0.77.127.in-addr.arpa.", "127.77.0.0/24"},
		{"77.127.in-addr.arpa.", "127.77.0.0/16"},
		{"127.in-addr.arpa.", "127.0.0.0/8"},
		{"1.0.77.127.in-addr.arpa.", ""}, // a full address
		{"256.77.127.in-addr.arpa.", ""},
		{"01.77.127.in-addr.arpa.", ""},
		{"x.77.127.in-addr.arpa.", ""},
		{"in-addr.arpa.", ""},
		{"d.f.ip6.arpa.", "fd00::/8"},
		{"0.0.d.f.ip6.arpa.", "fd00::/16"},
		{"7.0.0.d.f.ip6.arpa.", "fd00:7000::/20"},
		{"10.d.f.ip6.arpa.", ""},
		{"g.d.f.ip6.arpa.", ""},
		{"web.netsel.", ""},
	}
	for _, tt := range tests {
		p, ok := reversePrefix(tt.qname)
		if tt.want == "" {
			if ok {
				t.Errorf("reversePrefix(%q) = %v, want none", tt.qname, p)
			}
			continue
		}
		if want := netip.MustParsePrefix(tt.want); !ok || p != want {
			t.Errorf("reversePrefix(%q) = %v, %v; want %v", tt.qname, p, ok, want)
		}
	}
}

func TestHasVIPIn(t *testing.T) {
	snap := fuzzHandler(t).shared.Load().ix.Snapshot() // web has VIP 127.77.0.1
	for _, tt := range []struct {
		prefix string
		want   bool
	}{
		{"127.77.0.0/24", true}, // probed address by address
		{"127.77.1.0/24", false},
		{"127.77.0.0/16", true}, // too many addresses: walks the services
		{"127.0.0.0/8", true},
		{"10.0.0.0/8", false},
		{"fd00::/8", false},
	} {
		if got := hasVIPIn(snap, netip.MustParsePrefix(tt.prefix)); got != tt.want {
			t.Errorf("hasVIPIn(%s) = %v, want %v", tt.prefix, got, tt.want)
		}
	}
}
