package catalog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestInstanceList drives the chunked list with random puts and removes
// and, after each batch, checks it against a plain map and checks that
// every Entry published before still shows exactly what it showed then.
func TestInstanceList(t *testing.T) {
	tests := []struct {
		name      string
		ids       int // ids drawn from id0..id<ids-1>
		ops       int
		batch     int // operations between publishes
		removeOne int // one in removeOne operations removes
	}{
		{"small, mostly puts", 10, 2000, 7, 4},
		{"one chunk splitting", chunkMax * 3, 5000, 50, 5},
		{"many chunks, churn", chunkMax * 20, 30000, 300, 2},
		{"grow then drain", chunkMax * 4, 8000, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.ids)))
			var l instanceList
			want := map[string]*Instance{}
			// published is an Entry and a copy of what its chunks held
			// when it was published: the same instance pointers, in order.
			type published struct {
				e    *Entry
				held [][]*Instance
			}
			var pubs []published
			for op := range tt.ops {
				id := fmt.Sprintf("id%05d", rng.IntN(tt.ids))
				if tt.name == "grow then drain" {
					// The first half only puts, the second only removes.
					if op < tt.ops/2 {
						in := &Instance{ID: id, ModRevision: int64(op)}
						l.put(in)
						want[id] = in
					} else {
						l.remove(id)
						delete(want, id)
					}
				} else if rng.IntN(tt.removeOne) == 0 {
					l.remove(id)
					delete(want, id)
				} else {
					in := &Instance{ID: id, ModRevision: int64(op)}
					l.put(in)
					want[id] = in
				}
				if op%tt.batch == 0 {
					e := &Entry{chunks: l.freeze(), n: l.n}
					held := make([][]*Instance, len(e.chunks))
					for k, ch := range e.chunks {
						held[k] = slices.Clone(ch)
					}
					pubs = append(pubs, published{e, held})
				}
			}
			e := &Entry{chunks: l.freeze(), n: l.n}
			checkEntry(t, e, want)
			// equal, as a re-list uses it: the same instances cut into other
			// chunks are equal; a changed revision is not.
			flat := [][]*Instance{e.Instances()}
			if !l.equal(e.chunks, e.n) || !l.equal(flat, e.n) {
				t.Fatal("equal: the list differs from its own entry")
			}
			if e.n > 0 {
				changed := slices.Clone(e.Instances())
				last := *changed[len(changed)-1]
				last.ModRevision++
				changed[len(changed)-1] = &last
				if l.equal([][]*Instance{changed}, e.n) {
					t.Fatal("equal: a changed revision went unnoticed")
				}
			}
			for k, p := range pubs {
				// Walk the chunks themselves, not Instances (which caches a
				// flat copy), comparing instance pointers, not just IDs.
				if !slices.EqualFunc(p.e.chunks, p.held, slices.Equal) {
					t.Fatalf("published entry %d changed after later writes", k)
				}
			}
			for k, ch := range l.chunks {
				if len(ch) == 0 || len(ch) > chunkMax {
					t.Fatalf("chunk %d holds %d instances, want 1..%d", k, len(ch), chunkMax)
				}
			}
			if len(l.chunks) != len(l.owned) {
				t.Fatalf("%d chunks, %d ownership flags", len(l.chunks), len(l.owned))
			}
		})
	}
}

// checkEntry checks that e holds exactly want, sorted, and finds each.
func checkEntry(t *testing.T, e *Entry, want map[string]*Instance) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	got := e.Instances()
	if e.Len() != len(want) || !slices.Equal(idsOf(got), ids) {
		t.Fatalf("entry holds %d instances (Len %d), want %d", len(got), e.Len(), len(want))
	}
	for i, id := range ids {
		if in, ok := e.Instance(id); !ok || in != want[id] {
			t.Fatalf("Instance(%s) = %v, %v; want the one put last", id, in, ok)
		}
		if p, ok := e.Position(id); !ok || p != i {
			t.Fatalf("Position(%s) = %d, %v; want %d", id, p, ok, i)
		}
	}
	for _, id := range []string{"", "id", "id99999x", "zz"} {
		if _, ok := e.Instance(id); ok {
			t.Fatalf("Instance(%q) found an instance that was never put", id)
		}
	}
}

func idsOf(ins []*Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}
