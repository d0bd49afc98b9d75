package catalog

import (
	"encoding/json"
	"net/netip"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestWatchNotifyReList: a full publish (a re-list after the watch was
// cut) wakes the watchers of the services it changed and of those it
// removed, and leaves the others waiting; a stopped watch is forgotten.
func TestWatchNotifyReList(t *testing.T) {
	ks := MustKeyspace("")
	list := func(names ...string) *state {
		st := newState(ks, func(key string, err error) { t.Errorf("skipped %s: %v", key, err) })
		for _, name := range names {
			rev := int64(name[0]) // the same value at the same revision in every list
			b, _ := json.Marshal(&Service{Name: name, VIP: netip.AddrFrom4([4]byte{127, 77, 0, name[0]}),
				Ports: []Port{{Name: "default", Port: 80, Protocol: "tcp"}}})
			st.apply(&mvccpb.KeyValue{Key: []byte(ks.ServiceKey(name)), Value: b, ModRevision: rev}, false, rev)
		}
		return st
	}
	ix := NewIndex(nil, ks, IndexOptions{})
	ix.publish(list("a", "b", "c"), 200, true)
	a, stopA := ix.WatchService("a")
	_, stopA2 := ix.WatchService("a")
	defer stopA2()
	b, stopB := ix.WatchService("b")
	c, stopC := ix.WatchService("c")
	defer stopA()
	defer stopB()
	defer stopC()
	// The re-list reads a and c as they were (same values: same entries
	// when compared), b gone.
	ix.publish(list("a", "c"), 210, true)
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b, "c": c} {
		select {
		case <-ch:
			if name != "b" {
				t.Errorf("re-list woke %s, which did not change", name)
			}
		default:
			if name == "b" {
				t.Error("re-list that removed b did not wake its watcher")
			}
		}
	}
	stopA()
	stopA() // stop is idempotent
	if _, ok := ix.watches.m["a"]; !ok {
		t.Error("stopping one of two watchers of a forgot the other")
	}
	_, stopD := ix.WatchService("d")
	stopD()
	if _, ok := ix.watches.m["d"]; ok {
		t.Error("a stopped watch stays in the map")
	}
}
