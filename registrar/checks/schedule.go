package checks

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/catalog"
)

// Scheduling: one goroutine (the loop) owns every instance and check it
// runs, follows the catalog's snapshots, and keeps the checks due in a
// heap behind one timer. Due checks go to a fixed pool of MaxConcurrent
// probe workers; their results come back to the loop, which applies the
// thresholds and hands state changes to a few writers. A check's first
// probe is at a random point of its interval, so probes spread over it;
// later ones follow every interval, from when the previous one was due.

// inst is an instance this member checks.
type inst struct {
	in      *catalog.Instance
	targets []*target
	// writing is set while a write of its state is queued or in flight;
	// wrote and wroteRev are the state last written and the revision that
	// wrote it, until the snapshot shows it.
	writing  bool
	wrote    string
	wroteRev int64
	// lastProbe is when a probe of it last finished (Unix ns).
	lastProbe atomic.Int64
}

// target is one check of an instance.
type target struct {
	inst  *inst
	check catalog.Check
	addr  netip.AddrPort
	url   string // of an HTTP check
	th    threshold
	due   time.Time
	index int  // in the heap; -1 when not there
	gone  bool // the check was replaced or its instance left
}

// queue is a min-heap of targets by due time.
type queue []*target

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	t := x.(*target)
	t.index = len(*q)
	*q = append(*q, t)
}
func (q *queue) Pop() any {
	old := *q
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	t.index = -1
	return t
}

type probeDone struct {
	t   *target
	r   result
	end time.Time
}

// loop is the scheduler's state, touched by its goroutine only.
type loop struct {
	c        *Checker
	snap     *catalog.Snapshot
	ring     ring
	services map[string]map[string]*inst
	owned    int
	queue    queue
	inflight int
	jobs     chan *target
	results  chan probeDone
	writes   chan write
	written  chan written
}

func newLoop(c *Checker) *loop {
	n := c.cfg.MaxConcurrent
	return &loop{
		c:        c,
		services: map[string]map[string]*inst{},
		jobs:     make(chan *target, n),
		results:  make(chan probeDone, n),
		writes:   make(chan write, writeQueue),
		written:  make(chan written, writeQueue+writers),
	}
}

func (l *loop) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Workers stop on ctx; the loop stops first and leaves them results to
	// drop into buffers sized for every probe in flight.
	for range l.c.cfg.MaxConcurrent {
		wg.Go(func() { l.work(ctx) })
	}
	for range writers {
		wg.Go(func() { l.c.writer(ctx, l.writes, l.written) })
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	l.snap = l.c.cfg.Index.Snapshot()
	l.sync(nil, l.snap)
	defer l.c.setOwned(nil)
	for {
		l.dispatch(time.Now())
		if len(l.queue) > 0 && l.inflight < l.c.cfg.MaxConcurrent {
			timer.Reset(time.Until(l.queue[0].due))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-l.snap.Stale():
			prev := l.snap
			l.snap = l.c.cfg.Index.Snapshot()
			l.sync(prev, l.snap)
		case <-timer.C:
		case d := <-l.results:
			l.inflight--
			l.observe(d)
		case w := <-l.written:
			l.settle(w)
		}
	}
}

// work runs probes until ctx ends.
func (l *loop) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-l.jobs:
			r := l.c.prober.probe(ctx, t)
			r.output = clip(r.output)
			l.results <- probeDone{t: t, r: r, end: time.Now()}
		}
	}
}

// dispatch hands the checks due by now to the workers, as far as there
// are free slots.
func (l *loop) dispatch(now time.Time) {
	for len(l.queue) > 0 && l.inflight < l.c.cfg.MaxConcurrent && !l.queue[0].due.After(now) {
		t := heap.Pop(&l.queue).(*target)
		l.c.metrics.delay.Observe(now.Sub(t.due).Seconds())
		l.inflight++
		l.jobs <- t // never blocks: the buffer holds MaxConcurrent
	}
}

// observe applies a probe's result and plans the check's next probe.
func (l *loop) observe(d probeDone) {
	t := d.t
	l.c.probes.Add(1)
	l.c.metrics.probed(t.check.Type, d.r.status)
	if t.gone {
		return
	}
	t.inst.lastProbe.Store(d.end.UnixNano())
	t.th.observe(d.r, t.check.Failures, t.check.Successes)
	t.due = t.due.Add(t.check.Interval)
	if t.due.Before(d.end) {
		t.due = d.end
	}
	heap.Push(&l.queue, t)
	l.evaluate(t.inst)
}

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
