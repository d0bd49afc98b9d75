package netsel

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"slices"
)

// minSRVLen is the least a SRV record of an answer can take, compressed:
// its owner a pointer to the question (2 bytes), type, class, TTL and
// length (10), priority, weight and port (6), and a target of one short
// label before a pointer (4).
const minSRVLen = 22

// srvPick is the part of an SRV set that one reply carries.
type srvPick struct {
	// order holds positions in the set, in the order of the answer.
	order []int
	// sampled is set when order is a sample of a set too big for the
	// reply: a UDP reply must have its TC bit set, so that the client may
	// ask over TCP for a bigger sample.
	sampled bool
}

// pickSRV chooses the records of set that a reply with room bytes for its
// answer and additional sections carries, shuffled, reusing order's array.
// A record's size is that of its wire form and its glue.
// It is the one place that decides an SRV answer; both the regular path and
// answerWire serialise its choice.
//
// A set that might fit room, even compressed, comes whole (and a reply that
// does not fit is truncated the regular way, by CoreDNS's ScrubWriter).
// A bigger one — one that cannot fit — is sampled: a window of consecutive
// records (by instance ID, wrapping around) from a random start, with their
// glue, as long as their uncompressed wire forms fit room, then shuffled.
// Every record is in as many windows as any other, so the load spreads
// evenly over queries; consecutive records are also close in memory, which
// keeps a huge set's answer as cheap as a small one's. The cost is
// O(min(len(set), room/minSRVLen)), whatever the number of instances.
//
// A set of two priorities (a reader with a locality; see buildRecords) is
// sorted by priority: the records of the lower come first in the answer,
// shuffled among themselves, and a sample takes its window from them
// first, then from the others with the room left.
func pickSRV(set []srvRR, room int, order []int) srvPick {
	n := len(set)
	order = order[:0]
	// The records of the lowest priority are set[:local]; a set of one
	// priority (always without a locality) is all local.
	local := n
	if n > 1 && priority(set[0]) != priority(set[n-1]) {
		p := priority(set[0])
		local, _ = slices.BinarySearchFunc(set, p+1, func(s srvRR, q uint16) int { return cmp.Compare(priority(s), q) })
	}
	if n*minSRVLen <= room {
		for i := range n {
			order = append(order, i)
		}
		shuffle(order[:local])
		if local < n {
			shuffle(order[local:])
		}
		return srvPick{order: order}
	}
	order, room = window(set[:local], 0, room, order)
	if local < n && room > 0 {
		k := len(order)
		order, _ = window(set[local:], local, room, order)
		shuffle(order[k:])
		shuffle(order[:k])
		return srvPick{order: order, sampled: true}
	}
	shuffle(order)
	return srvPick{order: order, sampled: true}
}

// window appends to order the positions (plus base) of a window of set:
// consecutive records from a random start, wrapping around, as long as
// they fit room. It returns order and the room left.
func window(set []srvRR, base, room int, order []int) ([]int, int) {
	n := len(set)
	if n == 0 {
		return order, room
	}
	for j, i := 0, rand.IntN(n); j < n; j++ {
		size := len(set[i].wire) + len(set[i].glue)
		if set[i].wire == nil || size > room {
			break
		}
		room -= size
		order = append(order, base+i)
		if i++; i == n {
			i = 0
		}
	}
	return order, room
}

// priority is s's SRV priority, read from its wire form when it has one:
// the bytes a reply copies next, rather than another record in memory.
func priority(s srvRR) uint16 {
	// The owner (a 2-byte pointer), type, class, TTL and length come first.
	if len(s.wire) >= 14 {
		return binary.BigEndian.Uint16(s.wire[12:])
	}
	return s.srv.Priority
}

func shuffle(order []int) {
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
}

// replyRoom is the room a reply to a question for qname has for its answer
// and additional sections when it may be size bytes long: what is left
// after the header, the question and, with EDNS0, the OPT record.
func replyRoom(size int, qname string, edns bool) int {
	room := size - 12 - (len(qname) + 1) - 4 // header; question: name, type, class
	if edns {
		room -= 11 // the root name, type, class, TTL, length
	}
	return room
}
