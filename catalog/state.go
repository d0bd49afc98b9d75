package catalog

import (
	"net/netip"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// state is the writer-side, mutable model of the keyspace that the Index
// folds etcd events into and publishes as immutable Snapshots.
type state struct {
	ks       Keyspace
	services map[string]*svcState
	// dirty holds the services changed since the last publish.
	dirty map[string]bool
	// members are the live registrars; membersDirty says they changed
	// since the last publish.
	members      map[string]*Member
	membersDirty bool
	// onSkip is called for every key whose value does not decode.
	onSkip func(key string, err error)
}

type svcState struct {
	service   *Service
	instances instanceList
	modRev    int64
	// drains counts the instances draining (decorated with a drain key
	// of their own lease); orphan drain keys do not count.
	drains int
	// side holds each instance's health, maintenance and drain keys, kept
	// apart so that an instance put (a re-registration) keeps them and
	// they may arrive before the instance does.
	side map[string]*side
}

// side is what the keys beside an instance say about it.
type side struct {
	health *Health
	maint  *Maintenance
	drain  *Drain
}

func newState(ks Keyspace, onSkip func(string, error)) *state {
	return &state{ks: ks, services: map[string]*svcState{}, dirty: map[string]bool{},
		members: map[string]*Member{}, onSkip: onSkip}
}

// pending reports whether anything changed since the last publish.
func (st *state) pending() bool { return len(st.dirty) > 0 || st.membersDirty }

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
			s.removeInstance(key.ID)
		} else {
			in, err := DecodeInstance(kv.Value)
			if err == nil && (in.ID != key.ID || in.Service != key.Service) {
				err = errNameMismatch
			}
			if err != nil {
				s.removeInstance(key.ID)
				st.onSkip(string(kv.Key), err)
			} else {
				in.Lease = kv.Lease
				in.ModRevision = kv.ModRevision
				s.putInstance(s.decorate(in))
			}
		}
		st.touch(key.Service, s, rev)
	case KindHealth, KindMaintenance, KindDrain:
		s := st.svc(key.Service)
		if err := s.applySide(key, kv, deleted); err != nil {
			st.onSkip(string(kv.Key), err)
		}
		if in, ok := s.instances.get(key.ID); ok {
			c := *in
			s.putInstance(s.decorate(&c))
		}
		st.touch(key.Service, s, rev)
	case KindMember:
		delete(st.members, key.ID)
		if !deleted {
			m, err := DecodeMember(kv.Value)
			if err == nil && m.ID != key.ID {
				err = errNameMismatch
			}
			if err != nil {
				st.onSkip(string(kv.Key), err)
			} else {
				m.Lease = kv.Lease
				st.members[key.ID] = m
			}
		}
		st.membersDirty = true
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
	if s.service == nil && s.instances.n == 0 && len(s.side) == 0 {
		delete(st.services, name)
	}
}

// applySide folds a health, maintenance or drain key into s.side. A value
// that does not decode counts as absent.
func (s *svcState) applySide(key Key, kv *mvccpb.KeyValue, deleted bool) error {
	sd := s.side[key.ID]
	if sd == nil {
		sd = &side{}
	}
	var err error
	switch key.Kind {
	case KindHealth:
		sd.health = nil
		if !deleted {
			var h *Health
			if h, err = DecodeHealth(kv.Value); err == nil {
				h.Lease = kv.Lease
				sd.health = h
			}
		}
	case KindMaintenance:
		sd.maint = nil
		if !deleted {
			var m *Maintenance
			if m, err = DecodeMaintenance(kv.Value); err == nil {
				m.Lease = kv.Lease
				sd.maint = m
			}
		}
	case KindDrain:
		sd.drain = nil
		if !deleted {
			var d *Drain
			if d, err = DecodeDrain(kv.Value); err == nil {
				d.Lease = kv.Lease
				sd.drain = d
			}
		}
	}
	if sd.health == nil && sd.maint == nil && sd.drain == nil {
		delete(s.side, key.ID)
		return err
	}
	if s.side == nil {
		s.side = map[string]*side{}
	}
	s.side[key.ID] = sd
	return err
}

// decorate sets in's Health, Maintenance and Drain from the keys beside it
// that share its lease (a key left from an earlier lease of the same id
// says nothing about this one), and returns in.
func (s *svcState) decorate(in *Instance) *Instance {
	in.Health, in.Maintenance, in.Drain = nil, nil, nil
	sd := s.side[in.ID]
	if sd == nil {
		return in
	}
	// Keys beside an instance live under its lease: one under another
	// lease (an earlier registration's, or none) says nothing about it.
	same := func(lease int64) bool { return lease == in.Lease }
	if sd.health != nil && same(sd.health.Lease) {
		in.Health = sd.health
	}
	if sd.maint != nil && same(sd.maint.Lease) {
		in.Maintenance = sd.maint
	}
	if sd.drain != nil && same(sd.drain.Lease) {
		in.Drain = sd.drain
	}
	return in
}

// putInstance adds in or replaces the instance with its ID, counting
// draining instances.
func (s *svcState) putInstance(in *Instance) {
	if old, ok := s.instances.get(in.ID); ok && old.Drain != nil {
		s.drains--
	}
	if in.Drain != nil {
		s.drains++
	}
	s.instances.put(in)
}

// removeInstance removes the instance id, if present.
func (s *svcState) removeInstance(id string) {
	if old, ok := s.instances.get(id); ok && old.Drain != nil {
		s.drains--
	}
	s.instances.remove(id)
}

// visible reports whether readers see s: keys beside instances that are
// gone (or not yet come) make no service.
func (s *svcState) visible() bool { return s.service != nil || s.instances.n > 0 }

// entry builds the immutable Entry of s.
func (s *svcState) entry(name string) *Entry {
	return &Entry{Name: name, Service: s.service, ModRevision: s.modRev, chunks: s.instances.freeze(), n: s.instances.n, drains: s.drains}
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
	next.members = prev.members
	if full || st.membersDirty {
		next.members = st.sortedMembers()
		st.membersDirty = false
	}
	if full {
		for name, s := range st.services {
			if !s.visible() {
				continue
			}
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
		next.drains = prev.drains
		vipsChanged := false
		for name := range st.dirty {
			old := prev.services[name]
			var cur *Entry
			if s, ok := st.services[name]; ok && s.visible() {
				cur = s.entry(name)
				next.services[name] = cur
			} else {
				delete(next.services, name)
			}
			next.instances += entryLen(cur) - entryLen(old)
			next.drains += entryDrains(cur) - entryDrains(old)
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
	next.instances, next.drains = 0, 0
	for name, e := range next.services {
		next.instances += e.n
		next.drains += e.drains
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

func entryDrains(e *Entry) int {
	if e == nil {
		return 0
	}
	return e.drains
}

// entryVIP returns the VIP of e, or the zero Addr.
func entryVIP(e *Entry) netip.Addr {
	if e == nil || e.Service == nil {
		return netip.Addr{}
	}
	return e.Service.VIP
}

func (st *state) sortedMembers() []*Member {
	ms := make([]*Member, 0, len(st.members))
	for _, m := range st.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *Member) int { return strings.Compare(a.ID, b.ID) })
	return ms
}
