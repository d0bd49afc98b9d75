package registrar

import (
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
)

// TestTokenQuotaCounts plays registrations of one token that race, fail
// and outlive the index: none may free a slot that a stored or possibly
// stored instance holds.
func TestTokenQuotaCounts(t *testing.T) {
	empty := catalog.NewIndex(nil, catalog.MustKeyspace(catalog.DefaultPrefix), catalog.IndexOptions{}).Snapshot()
	in := func(id string) *catalog.Instance { return &catalog.Instance{Service: "s", ID: id} }
	now := time.Now()
	later := now.Add(time.Minute) // past the grace of every entry
	take := func(q *tokenQuota, id string, at time.Time) func(bool) {
		t.Helper()
		done, ok := q.take("token:a", in(id), empty, at)
		if !ok {
			t.Fatalf("%s refused", id)
		}
		return done
	}
	refused := func(q *tokenQuota, id string, at time.Time) bool {
		_, ok := q.take("token:a", in(id), empty, at)
		return !ok
	}

	t.Run("a failed registration racing a stored one", func(t *testing.T) {
		q := newTokenQuota(1, nil)
		first, second := take(q, "x", now), take(q, "x", now)
		first(false) // e.g. 409 from a stale port set
		second(true)
		if !refused(q, "y", now) {
			t.Error("the failure freed the slot of the instance stored by the other registration")
		}
	})
	t.Run("a stored one then a failed re-registration", func(t *testing.T) {
		q := newTokenQuota(1, nil)
		take(q, "x", now)(true)
		take(q, "x", now)(false)
		if !refused(q, "y", now) {
			t.Error("a failed re-registration freed the slot of the stored instance")
		}
	})
	t.Run("failures alone free the slot", func(t *testing.T) {
		q := newTokenQuota(1, nil)
		first, second := take(q, "x", now), take(q, "x", now)
		first(false)
		second(false)
		take(q, "y", now)(true)
	})
	t.Run("in progress is never pruned", func(t *testing.T) {
		q := newTokenQuota(1, nil)
		done := take(q, "x", now)
		if !refused(q, "y", later) {
			t.Error("a registration in progress was pruned because the index lacks it")
		}
		done(true)
	})
	t.Run("an instance that may be put back is never pruned", func(t *testing.T) {
		q := newTokenQuota(1, func(service, id string) bool { return id == "x" })
		take(q, "x", now)(true)
		if !refused(q, "y", later) {
			t.Error("an instance the registrar may put back was pruned")
		}
	})
	t.Run("gone instances are pruned", func(t *testing.T) {
		q := newTokenQuota(1, func(string, string) bool { return false })
		take(q, "x", now)(true)
		if refused(q, "y", now) == false {
			t.Error("an instance within its grace was pruned")
		}
		take(q, "y", later)(true)
	})
}
