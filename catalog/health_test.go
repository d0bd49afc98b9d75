package catalog

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestServing(t *testing.T) {
	mk := func(states ...string) []*Instance {
		var ins []*Instance
		for i, s := range states {
			in := &Instance{ID: string(rune('a' + i))}
			switch s {
			case StateMaintenance:
				in.Maintenance = &Maintenance{}
			case StateDraining:
				in.Drain = &Drain{}
			case StatePassing:
			default:
				in.Health = &Health{State: s}
			}
			ins = append(ins, in)
		}
		return ins
	}
	ids := func(ins []*Instance) string {
		var s string
		for _, in := range ins {
			s += in.ID
		}
		return s
	}
	for _, tc := range []struct {
		states []string
		want   string
	}{
		{nil, ""},
		{[]string{StatePassing, StatePassing}, "ab"},
		{[]string{StatePassing, StateCritical, StateWarning}, "ac"},
		{[]string{StateCritical, StateCritical}, "ab"}, // all critical: serve them all
		{[]string{StateCritical, StateMaintenance, StateDraining}, "a"},
		{[]string{StateMaintenance, StateDraining}, ""}, // deliberate: nothing
		{[]string{StateWarning, StateCritical}, "a"},
		{[]string{StateDraining, StatePassing, StateCritical}, "b"},
	} {
		if got := ids(serving(mk(tc.states...))); got != tc.want {
			t.Errorf("serving(%v) = %q, want %q", tc.states, got, tc.want)
		}
	}
}

// TestStateSideKeys plays the orders in which a reader can see an instance
// and the keys beside it: before it, after it, across a re-registration,
// from an older lease.
func TestStateSideKeys(t *testing.T) {
	ks := MustKeyspace("")
	st := newState(ks, func(key string, err error) { t.Errorf("skipped %s: %v", key, err) })
	rev := int64(0)
	put := func(key string, v any, lease int64) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rev++
		st.apply(&mvccpb.KeyValue{Key: []byte(key), Value: b, Lease: lease, ModRevision: rev}, false, rev)
	}
	del := func(key string) {
		rev++
		st.apply(&mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}, true, rev)
	}
	snap := newSnapshot()
	state := func() string {
		t.Helper()
		snap = st.publish(snap, rev, false)
		e, ok := snap.Service("web")
		if !ok {
			return "absent"
		}
		in, ok := e.Instance("a")
		if !ok {
			return "absent"
		}
		return in.State()
	}
	in := &Instance{ID: "a", Service: "web", Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Weight: 1}

	put(ks.HealthKey("web", "a"), &Health{State: StateCritical}, 7)
	if got := state(); got != "absent" {
		t.Fatalf("health with no instance: %s, want no service", got)
	}
	put(ks.InstanceKey("web", "a"), in, 7)
	if got := state(); got != StateCritical {
		t.Fatalf("instance after its health key: %s", got)
	}
	put(ks.InstanceKey("web", "a"), in, 7) // re-registration on the same lease
	if got := state(); got != StateCritical {
		t.Fatalf("re-registered: %s", got)
	}
	put(ks.MaintenanceKey("web", "a"), &Maintenance{Reason: "disk"}, 7)
	if got := state(); got != StateMaintenance {
		t.Fatalf("maintenance: %s", got)
	}
	del(ks.MaintenanceKey("web", "a"))
	put(ks.DrainKey("web", "a"), &Drain{}, 7)
	if got := state(); got != StateDraining {
		t.Fatalf("drain: %s", got)
	}
	e, _ := snap.Service("web")
	if len(e.Serving()) != 0 || len(e.Instances()) != 1 {
		t.Fatalf("draining instance: serving %d of %d", len(e.Serving()), len(e.Instances()))
	}
	put(ks.InstanceKey("web", "a"), in, 9) // registered again under a new lease
	if got := state(); got != StatePassing {
		t.Fatalf("keys of an older lease apply to a new one: %s", got)
	}
	del(ks.InstanceKey("web", "a"))
	del(ks.HealthKey("web", "a"))
	del(ks.DrainKey("web", "a"))
	if got := state(); got != "absent" {
		t.Fatalf("after every key is gone: %s", got)
	}
	if len(st.services) != 0 {
		t.Fatalf("state keeps %d services after every key is gone", len(st.services))
	}
}

func TestStateMembers(t *testing.T) {
	ks := MustKeyspace("")
	st := newState(ks, func(key string, err error) { t.Errorf("skipped %s: %v", key, err) })
	for i, id := range []string{"r2", "r1"} {
		b, _ := json.Marshal(&Member{ID: id})
		st.apply(&mvccpb.KeyValue{Key: []byte(ks.MemberKey(id)), Value: b, Lease: int64(i + 1)}, false, int64(i+1))
	}
	if !st.pending() {
		t.Fatal("members changed but nothing is pending")
	}
	snap := st.publish(newSnapshot(), 2, false)
	var got []string
	for _, m := range snap.Members() {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("members %v", got)
	}
	st.apply(&mvccpb.KeyValue{Key: []byte(ks.MemberKey("r1"))}, true, 3)
	snap = st.publish(snap, 3, false)
	if len(snap.Members()) != 1 || snap.Members()[0].ID != "r2" {
		t.Fatalf("after r1 left: %v", snap.Members())
	}
}

func TestReadersOutsideKeyspace(t *testing.T) {
	for _, prefix := range []string{"/netsel/", "/a/b/"} {
		ks := MustKeyspace(prefix)
		r := ks.ReaderKey("x")
		if _, ok := ks.ParseKey(r); ok || (r >= ks.Prefix() && r < ks.Prefix()[:len(ks.Prefix())-1]+"0") {
			t.Errorf("reader key %s is inside the watched range of %s", r, prefix)
		}
	}
}
