package netsel

import (
	"slices"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/catalog"
)

// Tag names, _<tag>[._<tag>...]._tag.<svc>.<zone>, answer for the serving
// instances of <svc> that carry every tag asked: SRV (their main ports, as
// <svc>'s own SRV set, with their addresses as additional records) and A or
// AAAA (their own addresses, not the VIP). Tags match as catalog.TagEqual
// says, ignoring ASCII case. A tag name that no serving instance matches is
// NXDOMAIN: no name below it (more tags) can match either. _tag.<svc> is
// NODATA while some serving instance carries a tag — an empty non-terminal
// above the tag names (RFC 8020: an NXDOMAIN would deny every name below
// it) — and NXDOMAIN otherwise.

// withTags returns the SRV records of rs.def whose instances carry every
// one of tags (distinct, lower-case). Its cost is bounded by the records
// of the tag asked with the fewest, times the number of tags: the index
// holds, per tag, the positions of the instances carrying it.
func (rs *records) withTags(tags []string) []srvRR {
	idx := rs.tagIndex()
	lists := make([][]int32, len(tags))
	for i, t := range tags {
		if lists[i] = idx[t]; len(lists[i]) == 0 {
			return nil
		}
	}
	slices.SortFunc(lists, func(a, b []int32) int { return len(a) - len(b) })
	pos := slices.Clone(lists[0])
	for _, l := range lists[1:] {
		if pos = intersect(pos, l); len(pos) == 0 {
			return nil
		}
	}
	set := make([]srvRR, len(pos))
	for i, p := range pos {
		set[i] = rs.def[p]
	}
	return set
}

// tagIndex returns rs's index of serving instances by tag, built once.
func (rs *records) tagIndex() map[string][]int32 {
	rs.tags.once.Do(func() {
		m := make(map[string][]int32)
		for k, in := range rs.serving {
			for _, t := range in.Tags {
				key := catalog.TagKey(t)
				// An instance may list a tag twice, or in two cases.
				if l := m[key]; len(l) == 0 || l[len(l)-1] != int32(k) {
					m[key] = append(l, int32(k))
				}
			}
		}
		rs.tags.m = m
	})
	return rs.tags.m
}

// intersect keeps in a (ascending) the positions that are also in b
// (ascending), in place: a merge, or binary searches when b is much longer.
func intersect(a, b []int32) []int32 {
	out := a[:0]
	if len(b) > 8*len(a) {
		for _, x := range a {
			if _, ok := slices.BinarySearch(b, x); ok {
				out = append(out, x)
			}
		}
		return out
	}
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// lookupTags answers qtype for a nameTag question.
func lookupTags(rs *records, nm name, owner string, qtype uint16, room int) result {
	set := rs.withTags(splitTags(nm.tags))
	if len(set) == 0 {
		return nxdomain
	}
	switch qtype {
	case dns.TypeSRV, dns.TypeANY: // RFC 8482: one RRset is enough
		return srvAnswer(rs, set, owner, room)
	case dns.TypeA, dns.TypeAAAA:
		return addrAnswer(rs, set, owner, qtype, room)
	}
	return nodata
}

// addrAnswer returns the addresses of type qtype of the instances of set,
// owned by owner, each once: those pickSRV chooses for room when set is
// too big for one reply (sized as SRV records with glue, so an address
// answer is sampled at most as an SRV answer is).
func addrAnswer(rs *records, set []srvRR, owner string, qtype uint16, room int) result {
	fam := set[:0:0]
	for _, s := range set {
		if rs.inst[s.inst].addr.qtype() == qtype {
			fam = append(fam, s)
		}
	}
	if len(fam) == 0 {
		return nodata
	}
	pick := pickSRV(fam, room, make([]int, 0, min(len(fam), max(room, 0)/minSRVLen+1)))
	res := result{rcode: dns.RcodeSuccess, truncated: pick.sampled}
	seen := make(map[string]bool, len(pick.order))
	for _, i := range pick.order {
		addr := rs.inst[fam[i].inst].addr
		key := addr.key()
		if seen[key] {
			continue // instances on one host: one record
		}
		seen[key] = true
		res.answer = append(res.answer, addr.copyAs(owner))
	}
	return res
}
