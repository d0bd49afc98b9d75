package registrar

import (
	"sync"
	"time"

	"github.com/netsel/netsel/catalog"
)

// tokenQuota counts the instances each token registered through this
// registrar, to bound them by Limits.MaxInstancesPerToken. It forgets an
// instance once the index no longer holds it; it starts empty when the
// registrar starts.
type tokenQuota struct {
	max int

	mu    sync.Mutex
	held  map[string]map[instanceRef]time.Time // token key -> instance -> when registered
	grace time.Duration                        // an instance this young is kept though the index lags
}

type instanceRef struct{ service, id string }

func newTokenQuota(max int) *tokenQuota {
	return &tokenQuota{max: max, held: map[string]map[instanceRef]time.Time{}, grace: 10 * time.Second}
}

// take counts in against token key: it reports false when the token holds
// its limit. undo gives back what take counted, for a registration that
// failed.
func (q *tokenQuota) take(key string, in *catalog.Instance, snap *catalog.Snapshot, now time.Time) (undo func(), ok bool) {
	ref := instanceRef{in.Service, in.ID}
	q.mu.Lock()
	defer q.mu.Unlock()
	set := q.held[key]
	if set == nil {
		set = map[instanceRef]time.Time{}
		q.held[key] = set
	}
	if _, again := set[ref]; again {
		set[ref] = now
		return func() {}, true
	}
	if len(set) >= q.max {
		for r, at := range set {
			if now.Sub(at) > q.grace && !held(snap, r) {
				delete(set, r)
			}
		}
		if len(set) >= q.max {
			return nil, false
		}
	}
	set[ref] = now
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.held[key], ref)
	}, true
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
