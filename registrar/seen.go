package registrar

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/catalog"
)

// maxSeen bounds the instances the registrar remembers; past it, new ones
// are not remembered (and so not put back after a freeze).
const maxSeen = 1 << 20

// seenInstances is the registrar's soft state about the instances whose
// heartbeats it serves: the last record it saw of each, its TTL, when etcd
// last renewed it, and whether a heartbeat came in time that etcd could
// not answer. With it, a heartbeat that finds its instance gone because
// etcd let the lease expire while it could not answer (a frozen etcd, a
// stalled disk) puts the instance back instead of answering 404. An entry
// lives as long as its client heartbeats at least once a TTL.
type seenInstances struct {
	// shards split the entries by instance, so that heartbeats of
	// different instances do not wait for one lock.
	shards [seenShards]seenShard
	seed   maphash.Seed
	// missing counts the entries with missed set, so that lost costs
	// nothing while etcd answers.
	missing atomic.Int64
}

const seenShards = 32

type seenShard struct {
	mu sync.Mutex
	m  map[seenRef]*seenInstance
}

type seenInstance struct {
	in *catalog.Instance // the last record seen in the index
	// val is the registration's record, encoded, for as long as in is
	// nil: bytes the collector does not scan, and no second decoded copy
	// of what the index holds.
	val     []byte
	ttl     time.Duration
	renewed time.Time // when etcd last renewed or wrote it
	heard   time.Time // the client's last heartbeat or registration
	// missed is when the first heartbeat since renewed came that etcd did
	// not answer; zero when none did.
	missed time.Time
}

func newSeenInstances() *seenInstances {
	s := &seenInstances{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = map[seenRef]*seenInstance{}
	}
	return s
}

// lookup locks the shard of name/id and returns it, the key and the entry
// (nil when there is none); the caller unlocks sh.mu.
func (s *seenInstances) lookup(name, id string) (sh *seenShard, k seenRef, e *seenInstance) {
	k = seenRef{name, id}
	sh = &s.shards[maphash.String(s.seed, id)%seenShards]
	sh.mu.Lock()
	return sh, k, sh.m[k]
}

// seenRef names an instance in seenInstances (a struct, not a joined
// string: looking one up allocates nothing).
type seenRef struct{ service, id string }

// heard notes a heartbeat of name/id at now. A client silent for longer
// than its TTL has let its instance expire: the registrar forgets it.
func (s *seenInstances) heard(name, id string, now time.Time) {
	sh, k, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e == nil {
		return
	}
	if now.Sub(e.heard) > e.ttl {
		s.drop(sh, k, e)
		return
	}
	e.heard = now
}

// drop deletes entry e of key k from sh, whose lock is held.
func (s *seenInstances) drop(sh *seenShard, k seenRef, e *seenInstance) {
	if !e.missed.IsZero() {
		s.missing.Add(-1)
	}
	delete(sh.m, k)
}

// renewed notes that etcd renewed (or wrote) name/id at now, with its record
// when known (nil keeps the one remembered).
func (s *seenInstances) renewed(name, id string, in *catalog.Instance, ttl time.Duration, now time.Time) {
	sh, k, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e == nil {
		if in == nil || len(sh.m) >= maxSeen/seenShards {
			return
		}
		e = &seenInstance{}
		sh.m[k] = e
	}
	if in != nil {
		e.in, e.val = in, nil
	}
	if !e.missed.IsZero() {
		s.missing.Add(-1)
	}
	e.ttl, e.renewed, e.heard, e.missed = ttl, now, now, time.Time{}
}

// registered notes that name/id was just registered with ttl and record
// val (encoded); the index's record replaces it at the next renewal.
func (s *seenInstances) registered(name, id string, val []byte, ttl time.Duration, now time.Time) {
	sh, k, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e == nil {
		if len(sh.m) >= maxSeen/seenShards {
			return
		}
		e = &seenInstance{}
		sh.m[k] = e
	}
	if !e.missed.IsZero() {
		s.missing.Add(-1)
	}
	e.in, e.val, e.ttl, e.renewed, e.heard, e.missed = nil, val, ttl, now, now, time.Time{}
}

// missed notes that etcd did not answer a heartbeat of name/id that came
// at at; in is its record in the index then, kept if none is yet.
func (s *seenInstances) missed(name, id string, in *catalog.Instance, at time.Time) {
	sh, _, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e == nil {
		return
	}
	if e.in == nil && in != nil {
		e.in, e.val = in, nil
	}
	if e.missed.IsZero() {
		e.missed = at
		s.missing.Add(1)
	}
}

// revivable returns the record and TTL of name/id when its lease was lost
// through no fault of its client: a heartbeat came while the lease was
// alive, etcd could not answer it, and the client has heartbeated at least
// once a TTL since.
func (s *seenInstances) revivable(name, id string) (*catalog.Instance, time.Duration, bool) {
	sh, _, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e == nil || !e.revivable(time.Now()) {
		return nil, 0, false
	}
	in := e.record()
	return in, e.ttl, in != nil
}

func (e *seenInstance) revivable(now time.Time) bool {
	return (e.in != nil || e.val != nil) && !e.missed.IsZero() && e.missed.Before(e.renewed.Add(e.ttl)) && now.Sub(e.heard) <= e.ttl
}

// record returns e's record: the index's, else the registration's
// decoded; nil when neither is known.
func (e *seenInstance) record() *catalog.Instance {
	if e.in != nil || e.val == nil {
		return e.in
	}
	in, err := catalog.DecodeInstance(e.val)
	if err != nil {
		return nil
	}
	return in
}

// alive reports whether name/id is remembered and its client has
// heartbeated (or registered it) within its TTL: an instance that may be
// put back although the index lacks it now.
func (s *seenInstances) alive(name, id string) bool {
	sh, _, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	return e != nil && time.Since(e.heard) <= e.ttl
}

// lost returns the revivable instances that snap lacks although it has
// their service.
func (s *seenInstances) lost(snap *catalog.Snapshot) []*catalog.Instance {
	if s.missing.Load() == 0 {
		return nil
	}
	now := time.Now()
	var lost []*catalog.Instance
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if !e.revivable(now) {
				continue
			}
			if svc, ok := snap.Service(k.service); ok && svc.Service != nil {
				if _, ok := svc.Instance(k.id); !ok {
					if in := e.record(); in != nil {
						lost = append(lost, in)
					}
				}
			}
		}
		sh.mu.Unlock()
	}
	return lost
}

// forget drops name/id: deregistered, or answered 404.
func (s *seenInstances) forget(name, id string) {
	sh, k, e := s.lookup(name, id)
	defer sh.mu.Unlock()
	if e != nil {
		s.drop(sh, k, e)
	}
}

// run forgets, every 10s until ctx ends, the instances whose clients have
// been silent for longer than their TTL.
func (s *seenInstances) run(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for i := range s.shards {
				sh := &s.shards[i]
				sh.mu.Lock()
				for k, e := range sh.m {
					if now.Sub(e.heard) > e.ttl {
						s.drop(sh, k, e)
					}
				}
				sh.mu.Unlock()
			}
		}
	}
}
