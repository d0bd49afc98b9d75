package registrar

import (
	"sync"
	"time"

	"github.com/netsel/netsel/catalog"
)

// tokenQuota counts the instances each token registered through this
// registrar, to bound them by Limits.MaxInstancesPerToken. It forgets an
// instance once no registration of it is in progress, none succeeded, or
// the index no longer holds it and keep does not claim it; it starts empty
// when the registrar starts.
type tokenQuota struct {
	max int
	// keep reports an instance to count although the index lacks it: one
	// the registrar may put back (see seenInstances).
	keep  func(service, id string) bool
	grace time.Duration // an instance this young is kept though the index lags

	mu   sync.Mutex
	held map[string]map[instanceRef]*quotaEntry // token key -> instance
}

type instanceRef struct{ service, id string }

// quotaEntry is one instance counted against a token.
type quotaEntry struct {
	at      time.Time // its last registration's start
	pending int       // registrations of it in progress
	stored  bool      // a registration of it succeeded
}

func newTokenQuota(max int, keep func(service, id string) bool) *tokenQuota {
	return &tokenQuota{max: max, keep: keep, held: map[string]map[instanceRef]*quotaEntry{}, grace: 10 * time.Second}
}

// take counts in against token key for a registration about to be tried:
// it reports false when the token holds its limit. The registration calls
// done with its outcome; a failed one gives the count back unless another
// registration of the same instance succeeded or is still in progress.
func (q *tokenQuota) take(key string, in *catalog.Instance, snap *catalog.Snapshot, now time.Time) (done func(stored bool), ok bool) {
	ref := instanceRef{in.Service, in.ID}
	q.mu.Lock()
	defer q.mu.Unlock()
	set := q.held[key]
	if set == nil {
		set = map[instanceRef]*quotaEntry{}
		q.held[key] = set
	}
	e := set[ref]
	if e == nil {
		if len(set) >= q.max {
			q.prune(set, snap, now)
		}
		if len(set) >= q.max {
			return nil, false
		}
		e = &quotaEntry{}
		set[ref] = e
	}
	e.at = now
	e.pending++
	return func(stored bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		e.pending--
		e.stored = e.stored || stored
		if e.pending == 0 && !e.stored && q.held[key][ref] == e {
			delete(q.held[key], ref)
		}
	}, true
}

// prune forgets the instances of set that are gone: none of their
// registrations is in progress, the last started more than grace ago, the
// index does not hold them and keep does not claim them.
func (q *tokenQuota) prune(set map[instanceRef]*quotaEntry, snap *catalog.Snapshot, now time.Time) {
	for r, e := range set {
		if e.pending == 0 && now.Sub(e.at) > q.grace && !held(snap, r) && (q.keep == nil || !q.keep(r.service, r.id)) {
			delete(set, r)
		}
	}
}

// held reports whether snap holds instance r.
func held(snap *catalog.Snapshot, r instanceRef) bool {
	e, ok := snap.Service(r.service)
	if !ok {
		return false
	}
	_, ok = e.Instance(r.id)
	return ok
}
