package registrar

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"

	"github.com/netsel/netsel/catalog"
)

// errVIPsExhausted means no free VIP was found in the configured range.
var errVIPsExhausted = errors.New("no free VIP in the configured range")

// maxProbe bounds how many addresses one pick looks at.
const maxProbe = 1 << 16

// allocator proposes candidate VIPs from a range. It holds no lock and no
// reservation: a candidate is only a guess, made good or refused by the etcd
// transaction that creates the VIP key.
type allocator struct {
	prefix netip.Prefix
	// size is the number of addresses in the range, capped at 1<<62.
	size uint64
	// broadcast is the offset of the IPv4 broadcast address, 0 when none
	// (IPv6, or a /31 or /32).
	broadcast uint64
}

func newAllocator(prefix netip.Prefix) *allocator {
	host := prefix.Addr().BitLen() - prefix.Bits()
	size := uint64(1) << 62
	if host < 62 {
		size = uint64(1) << host
	}
	a := &allocator{prefix: prefix, size: size}
	if prefix.Addr().Is4() && host >= 2 {
		a.broadcast = size - 1
	}
	return a
}

// pick returns a candidate VIP: from a random start, the first address
// that is not the network address (nor, in IPv4, the broadcast address),
// is not held by a service in snap and was not refused before (tried). It
// looks at up to maxProbe addresses.
func (a *allocator) pick(snap *catalog.Snapshot, tried map[netip.Addr]bool) (netip.Addr, error) {
	start := rand.Uint64N(a.size)
	n := min(a.size, maxProbe)
	for i := range n {
		off := (start + i) % a.size
		if off == 0 || off == a.broadcast {
			continue // the network or broadcast address
		}
		ip := addOffset(a.prefix.Addr(), off)
		if tried[ip] {
			continue
		}
		if _, taken := snap.ByVIP(ip); taken {
			continue
		}
		return ip, nil
	}
	return netip.Addr{}, errVIPsExhausted
}

// addOffset returns base + off.
func addOffset(base netip.Addr, off uint64) netip.Addr {
	if base.Is4() {
		b := base.As4()
		v := binary.BigEndian.Uint32(b[:]) + uint32(off)
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := base.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	nlo := lo + off
	if nlo < lo {
		hi++
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], nlo)
	return netip.AddrFrom16(b)
}
