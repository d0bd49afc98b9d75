package catalog

import (
	"slices"
	"sort"
)

// chunkMax is the most instances one chunk holds; a chunk that grows past
// it splits in two.
const chunkMax = 128

// instanceList is the writer's list of a service's instances, sorted by ID
// and cut into chunks, so that publishing a change copies the chunk that
// changed and the list of chunks, not every instance of the service. Chunks
// handed to a published Entry are never changed again: owned[i] says chunk
// i is the writer's own (created or copied since the last freeze) and may
// change in place.
type instanceList struct {
	chunks [][]*Instance
	owned  []bool
	n      int
}

// find returns the chunk that holds id or where it would go, the position
// in it, and whether id is there. The list must not be empty.
func (l *instanceList) find(id string) (c, i int, found bool) {
	c = sort.Search(len(l.chunks), func(k int) bool {
		ch := l.chunks[k]
		return ch[len(ch)-1].ID >= id
	})
	if c == len(l.chunks) { // after every instance: the end of the last chunk
		c--
		return c, len(l.chunks[c]), false
	}
	i, found = searchInstances(l.chunks[c], id)
	return c, i, found
}

// mutable returns chunk c, first copied when a published Entry holds it.
func (l *instanceList) mutable(c int) []*Instance {
	if !l.owned[c] {
		ch := l.chunks[c]
		l.chunks[c] = append(make([]*Instance, 0, len(ch)+1), ch...)
		l.owned[c] = true
	}
	return l.chunks[c]
}

// get returns the instance id.
func (l *instanceList) get(id string) (*Instance, bool) {
	if l.n == 0 {
		return nil, false
	}
	c, i, found := l.find(id)
	if !found {
		return nil, false
	}
	return l.chunks[c][i], true
}

// put adds in or replaces the instance with its ID.
func (l *instanceList) put(in *Instance) {
	if l.n == 0 {
		l.chunks, l.owned, l.n = [][]*Instance{{in}}, []bool{true}, 1
		return
	}
	c, i, found := l.find(in.ID)
	ch := l.mutable(c)
	if found {
		ch[i] = in
		return
	}
	ch = slices.Insert(ch, i, in)
	l.n++
	if len(ch) <= chunkMax {
		l.chunks[c] = ch
		return
	}
	half := len(ch) / 2
	l.chunks[c] = ch[:half:half]
	l.chunks = slices.Insert(l.chunks, c+1, slices.Clone(ch[half:]))
	l.owned = slices.Insert(l.owned, c+1, true)
}

// remove deletes the instance id, if present. A chunk left small merges
// with the next one, so deletions cannot leave a long list of tiny chunks.
func (l *instanceList) remove(id string) {
	if l.n == 0 {
		return
	}
	c, i, found := l.find(id)
	if !found {
		return
	}
	ch := slices.Delete(l.mutable(c), i, i+1)
	l.n--
	if len(ch) == 0 {
		l.chunks = slices.Delete(l.chunks, c, c+1)
		l.owned = slices.Delete(l.owned, c, c+1)
		return
	}
	l.chunks[c] = ch
	if c+1 < len(l.chunks) && len(ch)+len(l.chunks[c+1]) <= chunkMax/2 {
		l.chunks[c] = append(ch, l.chunks[c+1]...)
		l.chunks = slices.Delete(l.chunks, c+1, c+2)
		l.owned = slices.Delete(l.owned, c+1, c+2)
	}
}

// freeze returns the chunks for a published Entry; from now on they are
// copied before any change.
func (l *instanceList) freeze() [][]*Instance {
	clear(l.owned)
	return slices.Clone(l.chunks)
}

// equal reports whether l holds the same instances, by ID and revision and
// what the keys beside them say, as the n instances in chunks (an Entry's),
// however each is cut in chunks.
func (l *instanceList) equal(chunks [][]*Instance, n int) bool {
	if l.n != n {
		return false
	}
	c, i := 0, 0 // position in chunks
	for _, ch := range l.chunks {
		for _, in := range ch {
			for i == len(chunks[c]) {
				c, i = c+1, 0
			}
			other := chunks[c][i]
			if in.ID != other.ID || in.ModRevision != other.ModRevision || !sameSide(in, other) {
				return false
			}
			i++
		}
	}
	return true
}

// sameSide reports whether a and b carry the same health, maintenance and
// drain: a re-list must not keep an entry whose instances are unchanged
// but whose side keys changed while the watch was down.
func sameSide(a, b *Instance) bool {
	return samePtr(a.Health, b.Health, func(x, y *Health) bool {
		return x.State == y.State && x.Output == y.Output && x.Since.Equal(y.Since) && x.By == y.By && x.Lease == y.Lease
	}) && samePtr(a.Maintenance, b.Maintenance, func(x, y *Maintenance) bool {
		return x.Reason == y.Reason && x.Since.Equal(y.Since) && x.Lease == y.Lease
	}) && samePtr(a.Drain, b.Drain, func(x, y *Drain) bool {
		return x.Since.Equal(y.Since) && x.Lease == y.Lease
	})
}

// samePtr reports whether x and y are both nil, the same, or equal by eq.
func samePtr[T any](x, y *T, eq func(x, y *T) bool) bool {
	if x == nil || y == nil {
		return x == y
	}
	return x == y || eq(x, y)
}

// searchInstances returns the position of id in ins, sorted by ID, or where
// it would go, and whether it is there.
func searchInstances(ins []*Instance, id string) (int, bool) {
	i := sort.Search(len(ins), func(i int) bool { return ins[i].ID >= id })
	return i, i < len(ins) && ins[i].ID == id
}
