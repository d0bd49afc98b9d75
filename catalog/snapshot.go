package catalog

import (
	"net/netip"
	"sort"
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
	// Instances are the live instances, sorted by ID.
	Instances []*Instance
	// ModRevision is the etcd revision of the last change to the service or
	// any of its instances, as far as this reader has seen.
	ModRevision int64
}

// Instance returns the instance with the given id.
func (e *Entry) Instance(id string) (*Instance, bool) {
	if i, ok := searchInstances(e.Instances, id); ok {
		return e.Instances[i], true
	}
	return nil, false
}

// searchInstances returns the position of id in ins, sorted by ID, or where
// it would go, and whether it is there.
func searchInstances(ins []*Instance, id string) (int, bool) {
	i := sort.Search(len(ins), func(i int) bool { return ins[i].ID >= id })
	return i, i < len(ins) && ins[i].ID == id
}

// Snapshot is an immutable view of the keyspace at one etcd revision.
type Snapshot struct {
	revision  int64
	synced    bool
	services  map[string]*Entry
	vips      map[netip.Addr]string
	instances int
	next      chan struct{}
}

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
