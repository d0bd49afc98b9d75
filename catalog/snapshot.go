package catalog

import (
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
)

// Entry is everything known about one service in a Snapshot. An Entry is
// immutable: callers must not modify it or anything it points to. An Entry
// that did not change between two snapshots is the same pointer in both, so
// callers may cache work derived from it keyed by the pointer.
type Entry struct {
	Name string
	// Service is the persistent record, or nil when instances exist under a
	// name with no service record (which the registrar never writes).
	Service *Service
	// ModRevision is the etcd revision of the last change to the service or
	// any of its instances, as far as this reader has seen.
	ModRevision int64

	// chunks hold the live instances sorted by ID, shared with other
	// entries of the same service where they did not change.
	chunks [][]*Instance
	n      int
	drains int // drain keys of the service
	// flat caches Instances for entries of more than one chunk.
	flat atomic.Pointer[[]*Instance]
	// serving caches Serving.
	serving atomic.Pointer[[]*Instance]
}

// Serving returns the instances new traffic goes to, sorted by ID: those
// passing or warning; every critical one when no instance passes or warns
// (serving all rather than nothing); never one in maintenance or draining.
// DNS answers and both proxies choose from it. The slice is shared and must
// not be modified.
func (e *Entry) Serving() []*Instance {
	if p := e.serving.Load(); p != nil {
		return *p
	}
	s := serving(e.Instances())
	e.serving.Store(&s)
	return s
}

// Len returns the number of live instances.
func (e *Entry) Len() int { return e.n }

// Instances returns the live instances, sorted by ID. The slice is built on
// first use and shared by every caller: it must not be modified.
func (e *Entry) Instances() []*Instance {
	switch len(e.chunks) {
	case 0:
		return nil
	case 1:
		return slices.Clip(e.chunks[0]) // an append must not write into the shared chunk
	}
	if p := e.flat.Load(); p != nil {
		return *p
	}
	all := make([]*Instance, 0, e.n)
	for _, ch := range e.chunks {
		all = append(all, ch...)
	}
	e.flat.Store(&all)
	return all
}

// Position returns the position of instance id in Instances, and whether
// the entry has it.
func (e *Entry) Position(id string) (int, bool) {
	return searchInstances(e.Instances(), id)
}

// Instance returns the instance with the given id.
func (e *Entry) Instance(id string) (*Instance, bool) {
	c := sort.Search(len(e.chunks), func(k int) bool {
		ch := e.chunks[k]
		return ch[len(ch)-1].ID >= id
	})
	if c == len(e.chunks) {
		return nil, false
	}
	if i, ok := searchInstances(e.chunks[c], id); ok {
		return e.chunks[c][i], true
	}
	return nil, false
}

// Snapshot is an immutable view of the keyspace at one etcd revision.
type Snapshot struct {
	revision  int64
	synced    bool
	services  map[string]*Entry
	vips      map[netip.Addr]string
	vipsRev   int64 // the revision the set of VIPs last changed at
	instances int
	drains    int
	members   []*Member
	next      chan struct{}
}

// Draining reports whether any instance is draining (its drain key is
// held), so that readers report promptly what they serve while a drain
// waits for them.
func (s *Snapshot) Draining() bool { return s.drains > 0 }

// Members returns the live registrars, sorted by ID. The slice is shared
// and must not be modified.
func (s *Snapshot) Members() []*Member { return s.members }

func newSnapshot() *Snapshot {
	return &Snapshot{
		services: map[string]*Entry{},
		vips:     map[netip.Addr]string{},
		next:     make(chan struct{}),
	}
}

// Revision is the etcd revision the snapshot reflects.
func (s *Snapshot) Revision() int64 { return s.revision }

// Synced reports whether the snapshot reflects a completed read of etcd. The
// first snapshot of an Index is empty and not synced.
func (s *Snapshot) Synced() bool { return s.synced }

// Service returns the entry of the service named name.
func (s *Snapshot) Service(name string) (*Entry, bool) {
	e, ok := s.services[name]
	return e, ok
}

// ByVIP returns the entry of the service that owns vip.
func (s *Snapshot) ByVIP(vip netip.Addr) (*Entry, bool) {
	name, ok := s.vips[vip]
	if !ok {
		return nil, false
	}
	e, ok := s.services[name]
	return e, ok
}

// VIPsRevision returns the revision at which the set of VIPs last changed
// (a service with a VIP came or went), so that callers may cache work that
// depends on which addresses are VIPs until it changes.
func (s *Snapshot) VIPsRevision() int64 { return s.vipsRev }

// Names returns the names of all services, sorted.
func (s *Snapshot) Names() []string {
	names := make([]string, 0, len(s.services))
	for n := range s.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Len returns the number of services and of instances in the snapshot.
func (s *Snapshot) Len() (services, instances int) { return len(s.services), s.instances }

// Range calls f for every entry, in no particular order, until f returns false.
func (s *Snapshot) Range(f func(*Entry) bool) {
	for _, e := range s.services {
		if !f(e) {
			return
		}
	}
}

// Stale returns a channel that is closed once a newer snapshot replaces this
// one. Waiting on it never misses a change:
//
//	for s := ix.Snapshot(); ; s = ix.Snapshot() {
//		use(s)
//		select { case <-s.Stale(): case <-ctx.Done(): return }
//	}
func (s *Snapshot) Stale() <-chan struct{} { return s.next }

// Changed returns the names of the services whose entries differ between old
// and new, sorted: added, removed or modified.
func Changed(old, new *Snapshot) []string {
	var names []string
	for name, e := range new.services {
		if old.services[name] != e {
			names = append(names, name)
		}
	}
	for name := range old.services {
		if _, ok := new.services[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
