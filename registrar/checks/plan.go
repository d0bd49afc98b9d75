package checks

import (
	"container/heap"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/netsel/netsel/catalog"
)

// sync follows the catalog from prev (nil at first) to s: it adds the
// instances with checks this member now owns, re-plans those whose checks
// or addresses changed, and drops those it no longer owns or that left.
// Only services that changed are visited, unless the members did.
func (l *loop) sync(prev, s *catalog.Snapshot) {
	members := s.Members()
	l.c.metrics.members.Set(float64(len(members)))
	full := prev == nil || !l.ring.same(members)
	if full {
		l.ring = newRing(members)
		for name := range l.services {
			if _, ok := s.Service(name); !ok {
				l.syncService(name, nil)
			}
		}
		s.Range(func(e *catalog.Entry) bool {
			l.syncService(e.Name, e)
			return true
		})
	} else {
		for _, name := range catalog.Changed(prev, s) {
			e, _ := s.Service(name)
			l.syncService(name, e)
		}
	}
	l.c.owned.Store(int64(l.owned))
	l.c.metrics.owned.Set(float64(l.owned))
}

// syncService brings the instances of service name to what e (nil when
// the service is gone) says.
func (l *loop) syncService(name string, e *catalog.Entry) {
	have := l.services[name]
	var seen map[string]bool
	if e != nil {
		me := l.c.cfg.MemberID
		for _, in := range e.Instances() {
			if len(in.Checks) == 0 || l.ring.owner(name, in.ID) != me {
				continue
			}
			if seen == nil {
				seen = make(map[string]bool, len(have))
			}
			seen[in.ID] = true
			if have == nil {
				have = map[string]*inst{}
				l.services[name] = have
			}
			l.put(have, in)
		}
	}
	for id, it := range have {
		if !seen[id] {
			l.drop(it)
			l.owned--
			delete(have, id)
			l.c.forget(key(name, id))
		}
	}
	if len(have) == 0 {
		delete(l.services, name)
	}
}

// put adds instance in, or updates the one with its id.
func (l *loop) put(have map[string]*inst, in *catalog.Instance) {
	it := have[in.ID]
	if it != nil && it.in == in {
		return
	}
	if it != nil && sameProbes(it.in, in) {
		if it.in.Lease != in.Lease {
			it.wrote, it.wroteRev = "", 0
		}
		it.in = in
		l.evaluate(it)
		return
	}
	if it != nil {
		l.drop(it)
	} else {
		l.owned++
	}
	nt := &inst{in: in}
	state := shown(in)
	now := time.Now()
	for _, ch := range in.Checks {
		t := &target{inst: nt, check: ch, addr: probeAddr(in, ch), th: newThreshold(state), index: -1}
		if ch.Type == catalog.CheckHTTP {
			t.url = "http://" + t.addr.String() + ch.Path
		}
		t.due = now.Add(rand.N(ch.Interval))
		heap.Push(&l.queue, t)
		nt.targets = append(nt.targets, t)
	}
	if it != nil {
		nt.lastProbe.Store(it.lastProbe.Load())
	}
	have[in.ID] = nt
	l.c.remember(key(in.Service, in.ID), nt)
}

// drop stops the checks of it.
func (l *loop) drop(it *inst) {
	for _, t := range it.targets {
		t.gone = true
		if t.index >= 0 {
			heap.Remove(&l.queue, t.index)
		}
	}
}

// sameProbes reports whether a and b probe the same things.
func sameProbes(a, b *catalog.Instance) bool {
	if a.Address != b.Address || a.Port != b.Port || len(a.Checks) != len(b.Checks) {
		return false
	}
	for i := range a.Checks {
		if a.Checks[i] != b.Checks[i] || probeAddr(a, a.Checks[i]) != probeAddr(b, b.Checks[i]) {
			return false
		}
	}
	return true
}

// probeAddr returns the address:port check ch of in probes: its named
// port, or the main port.
func probeAddr(in *catalog.Instance, ch catalog.Check) netip.AddrPort {
	port := in.Port
	if p, ok := in.Ports[ch.Port]; ok && ch.Port != "" {
		port = p
	}
	return netip.AddrPortFrom(in.Address, uint16(port))
}

func (c *Checker) remember(k string, it *inst) {
	c.mu.Lock()
	c.last[k] = it
	c.mu.Unlock()
}

func (c *Checker) forget(k string) {
	c.mu.Lock()
	delete(c.last, k)
	c.mu.Unlock()
}

// setOwned replaces the instances LastProbe knows (nil: none).
func (c *Checker) setOwned(m map[string]*inst) {
	c.mu.Lock()
	c.last = m
	if c.last == nil {
		c.last = map[string]*inst{}
	}
	c.mu.Unlock()
	c.owned.Store(int64(len(c.last)))
	c.metrics.owned.Set(float64(len(c.last)))
}
