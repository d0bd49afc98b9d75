package netsel

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/netsel/netsel/catalog"
)

// reversePrefix parses a reverse name that stops above a full address —
// 0.77.127.in-addr.arpa., or some nibbles of an ip6.arpa. name — into the
// prefix of the addresses below it. qname is lower-case and fully
// qualified.
func reversePrefix(qname string) (netip.Prefix, bool) {
	var (
		labels []string
		max    int // labels in a full address
		bits   int // bits a label stands for
		parse  func(string) (int, bool)
	)
	switch {
	case strings.HasSuffix(qname, ".in-addr.arpa."):
		labels = strings.Split(strings.TrimSuffix(qname, ".in-addr.arpa."), ".")
		max, bits = 4, 8
		parse = func(s string) (int, bool) {
			v, err := strconv.Atoi(s)
			return v, err == nil && v >= 0 && v <= 255 && s == strconv.Itoa(v)
		}
	case strings.HasSuffix(qname, ".ip6.arpa."):
		labels = strings.Split(strings.TrimSuffix(qname, ".ip6.arpa."), ".")
		max, bits = 32, 4
		parse = func(s string) (int, bool) {
			v, err := strconv.ParseUint(s, 16, 8)
			return int(v), err == nil && len(s) == 1
		}
	default:
		return netip.Prefix{}, false
	}
	if len(labels) == 0 || len(labels) >= max {
		return netip.Prefix{}, false
	}
	var b [16]byte
	for i := range labels {
		v, ok := parse(labels[len(labels)-1-i]) // the most significant label is last
		if !ok {
			return netip.Prefix{}, false
		}
		if bits == 8 {
			b[i] = byte(v)
		} else if i%2 == 0 {
			b[i/2] = byte(v) << 4
		} else {
			b[i/2] |= byte(v)
		}
	}
	addr := netip.AddrFrom16(b)
	if bits == 8 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.PrefixFrom(addr, len(labels)*bits), true
}

// maxProbeBits bounds the addresses hasVIPIn looks up one by one, to
// 1<<maxProbeBits; for a larger prefix it walks the services instead.
const maxProbeBits = 12

// hasVIPIn reports whether some service's VIP is in p, at the cost of at
// most 1<<maxProbeBits lookups or one walk over the services.
func hasVIPIn(snap *catalog.Snapshot, p netip.Prefix) bool {
	if p.Addr().BitLen()-p.Bits() <= maxProbeBits {
		for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
			if _, ok := snap.ByVIP(a); ok {
				return true
			}
		}
		return false
	}
	found := false
	snap.Range(func(e *catalog.Entry) bool {
		found = e.Service != nil && p.Contains(e.Service.VIP)
		return !found
	})
	return found
}
