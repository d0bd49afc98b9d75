package checks

import "github.com/netsel/netsel/catalog"

// Ownership: every registrar ranks the live members for an instance by a
// hash of (member id, "<service>/<id>") and the highest wins — rendezvous
// (highest random weight) hashing. Every registrar that sees the same
// members picks the same owner, and a member joining or leaving moves only
// the instances it wins or won: about 1/n of them.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is splitmix64's finaliser: FNV's low bits alone spread poorly.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// ring is the members an ownership is computed over, each with the hash
// of its id ready to be continued with an instance's key.
type ring struct {
	ids   []string
	seeds []uint64
}

func newRing(members []*catalog.Member) ring {
	r := ring{ids: make([]string, len(members)), seeds: make([]uint64, len(members))}
	for i, m := range members {
		r.ids[i] = m.ID
		r.seeds[i] = fnv(fnv(fnvOffset, m.ID), "\x00")
	}
	return r
}

// same reports whether r and members name the same ids in the same order.
func (r ring) same(members []*catalog.Member) bool {
	if len(r.ids) != len(members) {
		return false
	}
	for i, m := range members {
		if r.ids[i] != m.ID {
			return false
		}
	}
	return true
}

// owner returns the id of the member that checks instance id of service,
// "" when there is no member.
func (r ring) owner(service, id string) string {
	best, owner := uint64(0), ""
	for i, seed := range r.seeds {
		h := mix(fnv(fnv(fnv(seed, service), "/"), id))
		if owner == "" || h > best {
			best, owner = h, r.ids[i]
		}
	}
	return owner
}
