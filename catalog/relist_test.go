package catalog

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestRelistSideKeys: a re-list after the watch was cut (a new state from
// a fresh read, published in full over the last snapshot) shows the keys
// beside instances as they are now — maintenance, a drain or a health
// state set or ended while the watch was down — although the instances
// themselves did not change.
func TestRelistSideKeys(t *testing.T) {
	ks := MustKeyspace("")
	in := &Instance{ID: "a", Service: "web", Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Weight: 1}
	svc := &Service{Name: "web", VIP: netip.MustParseAddr("127.77.0.1"), Ports: []Port{{Name: "default", Port: 80, Protocol: "tcp"}}}
	since := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	// list builds the state a re-list reads: the service, instance a
	// (always at revision 2) and the side keys given.
	list := func(side map[string]any) *state {
		st := newState(ks, func(key string, err error) { t.Errorf("skipped %s: %v", key, err) })
		put := func(key string, v any, rev int64) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			st.apply(&mvccpb.KeyValue{Key: []byte(key), Value: b, Lease: 7, ModRevision: rev}, false, rev)
		}
		put(ks.ServiceKey("web"), svc, 1)
		put(ks.InstanceKey("web", "a"), in, 2)
		for k, v := range side {
			put(k, v, 3)
		}
		return st
	}
	state := func(snap *Snapshot) string {
		e, ok := snap.Service("web")
		if !ok {
			t.Fatal("no service web")
		}
		a, ok := e.Instance("a")
		if !ok {
			t.Fatal("no instance a")
		}
		return a.State()
	}
	snap := list(nil).publish(newSnapshot(), 10, true)
	for i, tc := range []struct {
		side map[string]any
		want string
	}{
		{map[string]any{ks.MaintenanceKey("web", "a"): &Maintenance{Reason: "x", Since: since}}, StateMaintenance},
		{map[string]any{ks.MaintenanceKey("web", "a"): &Maintenance{Reason: "y", Since: since}}, StateMaintenance},
		{nil, StatePassing},
		{map[string]any{ks.DrainKey("web", "a"): &Drain{Since: since}}, StateDraining},
		{map[string]any{ks.HealthKey("web", "a"): &Health{State: StateCritical, Since: since}}, StateCritical},
		{map[string]any{ks.HealthKey("web", "a"): &Health{State: StateWarning, Since: since}}, StateWarning},
	} {
		snap = list(tc.side).publish(snap, int64(20+i), true)
		if got := state(snap); got != tc.want {
			t.Errorf("re-list %d: %s, want %s", i, got, tc.want)
		}
	}
	e, _ := snap.Service("web")
	a, _ := e.Instance("a")
	before := a
	snap = list(map[string]any{ks.HealthKey("web", "a"): &Health{State: StateWarning, Since: since}}).publish(snap, 30, true)
	e, _ = snap.Service("web")
	if a, _ = e.Instance("a"); a != before {
		t.Error("a re-list that changed nothing rebuilt the instance")
	}
}
