package registrar

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
)

// TestSeenRecordWithoutIndex: an instance whose heartbeat etcd missed
// before the registrar's index ever held it (a freeze right after its
// registration) can still be put back, from the registration's record.
func TestSeenRecordWithoutIndex(t *testing.T) {
	in := &catalog.Instance{ID: "a", Service: "web", Address: netip.MustParseAddr("127.0.0.1"), Port: 80, Weight: 1, Registered: time.Now()}
	val, err := catalog.EncodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	s := newSeenInstances()
	now := time.Now()
	s.registered("web", "a", val, 10*time.Second, now)
	s.missed("web", "a", nil, now.Add(time.Second)) // the index does not have it
	got, ttl, ok := s.revivable("web", "a")
	if !ok || got == nil || got.Address != in.Address || got.Port != 80 || ttl != 10*time.Second {
		t.Fatalf("revivable: %+v %v %v; want the registration's record", got, ttl, ok)
	}

	// Once the index's record is known it is the one put back.
	idx := *in
	idx.Port = 81
	s.renewed("web", "a", &idx, 10*time.Second, now)
	s.missed("web", "a", nil, now.Add(time.Second))
	if got, _, _ := s.revivable("web", "a"); got != &idx {
		t.Fatalf("revivable after a renewal: %+v, want the index's record", got)
	}
}
