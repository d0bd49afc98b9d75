package catalog

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Benchmarks of the index at 100,000 instances (1,000 services × 100) with
// realistic values: two named ports, two tags, two meta pairs, a zone.
// They feed the index's state the same etcd key-values a watch would, with
// no etcd. Run with:
//
//	go test -run '^$' -bench . -benchmem ./catalog/

const (
	benchServices  = 1000
	benchInstances = 100 // per service
)

var benchKS = MustKeyspace(DefaultPrefix)

func benchServiceKV(s int, rev int64) *mvccpb.KeyValue {
	name := fmt.Sprintf("svc-%04d", s)
	val, err := EncodeService(&Service{
		Name: name,
		VIP:  netip.AddrFrom4([4]byte{127, 77, byte(s >> 8), byte(s)}),
		Ports: []Port{
			{Name: "http", Port: 80, Protocol: ProtocolTCP},
			{Name: "metrics", Port: 9090, Protocol: ProtocolTCP},
		},
		Created: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	return &mvccpb.KeyValue{Key: []byte(benchKS.ServiceKey(name)), Value: val, CreateRevision: rev, ModRevision: rev, Version: 1}
}

func benchInstanceKV(s, i int, rev int64) *mvccpb.KeyValue {
	name := fmt.Sprintf("svc-%04d", s)
	id := fmt.Sprintf("%s-7f9c8d-%05d", name, i)
	val, err := EncodeInstance(&Instance{
		ID:         id,
		Service:    name,
		Address:    netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), byte(i)}),
		Port:       8080,
		Ports:      map[string]int{"http": 8080, "metrics": 9100},
		Weight:     1,
		Tags:       []string{"v1.42.0", "canary"},
		Meta:       map[string]string{"version": "1.42.0", "commit": "4f2a9c1e"},
		Zone:       "zone-a",
		Registered: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
	})
	if err != nil {
		panic(err)
	}
	return &mvccpb.KeyValue{Key: []byte(benchKS.InstanceKey(name, id)), Value: val,
		CreateRevision: rev, ModRevision: rev, Version: 1, Lease: 0x7a3c000000000000 + rev}
}

// benchIndex builds the state and the published snapshot of an index
// holding every benchmark service and instance, as Index.list does.
func benchIndex(tb testing.TB) (*state, *Snapshot, int64) {
	st := newState(benchKS, func(key string, err error) { tb.Fatalf("skipped %s: %v", key, err) })
	rev := int64(1)
	for s := range benchServices {
		rev++
		st.apply(benchServiceKV(s, rev), false, rev)
		for i := range benchInstances {
			rev++
			st.apply(benchInstanceKV(s, i, rev), false, rev)
		}
	}
	snap := st.publish(newSnapshot(), rev, true)
	if _, n := snap.Len(); n != benchServices*benchInstances {
		tb.Fatalf("snapshot holds %d instances, want %d", n, benchServices*benchInstances)
	}
	return st, snap, rev
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkIndexMemory reports the live heap of an index of 100,000
// instances: the writer-side state and the snapshot readers hold (instance
// values are shared between them). Use -benchtime=1x: one build is enough.
func BenchmarkIndexMemory(b *testing.B) {
	var bytes uint64
	for b.Loop() {
		before := liveHeap()
		st, snap, _ := benchIndex(b)
		after := liveHeap()
		runtime.KeepAlive(st)
		runtime.KeepAlive(snap)
		bytes = after - before
	}
	n := benchServices * benchInstances
	b.ReportMetric(float64(bytes)*100000/float64(n), "B/100k-instances")
	b.ReportMetric(float64(bytes)/float64(n), "B/instance")
}

// BenchmarkApply measures what the index does for one watch event in a
// 100,000-instance keyspace: decode and apply one instance put (a
// re-registration, so the size stays put), then publish a new snapshot.
// "batch" folds 256 events into one snapshot, as the watch loop does when
// events stream in faster than MinPublishInterval; its ns/op is still per
// event.
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch-%d", batch), func(b *testing.B) {
			st, snap, rev := benchIndex(b)
			kvs := make([]*mvccpb.KeyValue, benchServices)
			for s := range kvs {
				kvs[s] = benchInstanceKV(s, s%benchInstances, 0)
			}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				rev++
				kv := kvs[n%len(kvs)]
				kv.ModRevision = rev
				st.apply(kv, false, rev)
				n++
				if n%batch == 0 {
					snap = st.publish(snap, rev, false)
				}
			}
			if e, ok := snap.Service("svc-0000"); !ok || e.Len() != benchInstances {
				b.Fatal("service svc-0000 lost instances")
			}
		})
	}
}

// lookupSnap is built once: the benchmark function runs several times.
var (
	lookupOnce sync.Once
	lookupSnap *Snapshot
)

// BenchmarkLookup measures a reader's lookup: Snapshot().Service(name) of
// a 100,000-instance index, from every core at once.
func BenchmarkLookup(b *testing.B) {
	lookupOnce.Do(func() { _, lookupSnap, _ = benchIndex(b) })
	snap := lookupSnap
	ix := NewIndex(nil, benchKS, IndexOptions{})
	ix.snap.Store(snap)
	names := snap.Names()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e, ok := ix.Snapshot().Service(names[i%len(names)])
			if !ok || e.Len() != benchInstances {
				b.Errorf("lookup %s: %v", names[i%len(names)], ok)
				return
			}
			i++
		}
	})
}
