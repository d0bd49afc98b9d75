package catalog

import (
	"net/netip"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// state is the writer-side, mutable model of the keyspace that the Index
// folds etcd events into and publishes as immutable Snapshots.
type state struct {
	ks       Keyspace
	services map[string]*svcState
	// dirty holds the services changed since the last publish.
	dirty map[string]bool
	// onSkip is called for every key whose value does not decode.
	onSkip func(key string, err error)
}

type svcState struct {
	service   *Service
	instances instanceList
	modRev    int64
}

func newState(ks Keyspace, onSkip func(string, error)) *state {
	return &state{ks: ks, services: map[string]*svcState{}, dirty: map[string]bool{}, onSkip: onSkip}
}

func (st *state) svc(name string) *svcState {
	s := st.services[name]
	if s == nil {
		s = &svcState{}
		st.services[name] = s
	}
	return s
}

// apply folds one key-value change into the state. A put whose value does
// not decode is treated as a delete: bad values are never served.
func (st *state) apply(kv *mvccpb.KeyValue, deleted bool, rev int64) {
	key, ok := st.ks.ParseKey(string(kv.Key))
	if !ok {
		if !deleted {
			st.onSkip(string(kv.Key), errBadKey)
		}
		return
	}
	switch key.Kind {
	case KindService:
		s := st.svc(key.Service)
		s.service = nil
		if !deleted {
			svc, err := DecodeService(kv.Value)
			if err == nil && svc.Name != key.Service {
				err = errNameMismatch
			}
			if err != nil {
				st.onSkip(string(kv.Key), err)
			} else {
				svc.ModRevision = kv.ModRevision
				s.service = svc
			}
		}
		st.touch(key.Service, s, rev)
	case KindInstance:
		s := st.svc(key.Service)
		if deleted {
			s.instances.remove(key.ID)
		} else {
			in, err := DecodeInstance(kv.Value)
			if err == nil && (in.ID != key.ID || in.Service != key.Service) {
				err = errNameMismatch
			}
			if err != nil {
				s.instances.remove(key.ID)
				st.onSkip(string(kv.Key), err)
			} else {
				in.Lease = kv.Lease
				in.ModRevision = kv.ModRevision
				s.instances.put(in)
			}
		}
		st.touch(key.Service, s, rev)
	case KindVIP:
		// VIP reservations serve allocation only; readers find VIPs in
		// service records.
	}
}

func (st *state) touch(name string, s *svcState, rev int64) {
	if rev > s.modRev {
		s.modRev = rev
	}
	st.dirty[name] = true
	if s.service == nil && s.instances.n == 0 {
		delete(st.services, name)
	}
}

// entry builds the immutable Entry of s.
func (s *svcState) entry(name string) *Entry {
	return &Entry{Name: name, Service: s.service, ModRevision: s.modRev, chunks: s.instances.freeze(), n: s.instances.n}
}

// sameAs reports whether e holds exactly what s holds, judged by revisions.
func (s *svcState) sameAs(e *Entry) bool {
	if (s.service == nil) != (e.Service == nil) {
		return false
	}
	if s.service != nil && s.service.ModRevision != e.Service.ModRevision {
		return false
	}
	return s.instances.equal(e.chunks, e.n)
}

// publish returns the snapshot that follows prev: entries of services that did
// not change keep their pointers. full rebuilds every entry's map slot (after
// a re-list), reusing unchanged entries.
func (st *state) publish(prev *Snapshot, rev int64, full bool) *Snapshot {
	next := newSnapshot()
	next.revision = rev
	next.synced = true
	if full {
		for name, s := range st.services {
			if old, ok := prev.services[name]; ok && s.sameAs(old) {
				next.services[name] = old
				continue
			}
			if s.modRev < rev && prev.services[name] != nil {
				// Changed while we were not watching: the change is at
				// most as old as this list.
				s.modRev = rev
			}
			next.services[name] = s.entry(name)
		}
	} else {
		next.services = make(map[string]*Entry, len(prev.services)+len(st.dirty))
		for name, e := range prev.services {
			next.services[name] = e
		}
		next.instances = prev.instances
		vipsChanged := false
		for name := range st.dirty {
			old := prev.services[name]
			var cur *Entry
			if s, ok := st.services[name]; ok {
				cur = s.entry(name)
				next.services[name] = cur
			} else {
				delete(next.services, name)
			}
			next.instances += entryLen(cur) - entryLen(old)
			if entryVIP(old) != entryVIP(cur) {
				vipsChanged = true
			}
		}
		clear(st.dirty)
		if !vipsChanged {
			next.vips, next.vipsRev = prev.vips, prev.vipsRev
			return next
		}
	}
	clear(st.dirty)
	next.vipsRev = rev
	next.vips = make(map[netip.Addr]string, len(next.services))
	next.instances = 0
	for name, e := range next.services {
		next.instances += e.n
		if e.Service != nil {
			next.vips[e.Service.VIP] = name
		}
	}
	return next
}

func entryLen(e *Entry) int {
	if e == nil {
		return 0
	}
	return e.n
}

// entryVIP returns the VIP of e, or the zero Addr.
func entryVIP(e *Entry) netip.Addr {
	if e == nil || e.Service == nil {
		return netip.Addr{}
	}
	return e.Service.VIP
}
