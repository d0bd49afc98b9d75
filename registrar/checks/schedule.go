package checks

import (
	"container/heap"
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/catalog"
)

// Scheduling: one goroutine (the loop) owns every instance and check it
// runs, follows the catalog's snapshots, and keeps the checks due in a
// heap behind one timer. Due checks go to a pool of at most MaxConcurrent
// probe workers (started as needed, never one a probe); their results
// come back to the loop, which applies the thresholds and hands state
// changes to a few writers. A check's first
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
	// workers is how many probe workers run: as many as were ever needed
	// at once, up to MaxConcurrent, started as needed.
	workers int
	wg      sync.WaitGroup
	jobs    chan *target
	results chan probeDone
	writes  chan write
	written chan written
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
	// Workers stop on ctx; the loop stops first and leaves them results to
	// drop into buffers sized for every probe in flight.
	defer l.wg.Wait()
	for range writers {
		l.wg.Go(func() { l.c.writer(ctx, l.writes, l.written) })
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	l.snap = l.c.cfg.Index.Snapshot()
	l.sync(nil, l.snap)
	defer l.c.setOwned(nil)
	for {
		l.dispatch(ctx, time.Now())
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
// are free slots, and starts a worker (that stops when ctx ends) when
// every one is busy.
func (l *loop) dispatch(ctx context.Context, now time.Time) {
	for len(l.queue) > 0 && l.inflight < l.c.cfg.MaxConcurrent && !l.queue[0].due.After(now) {
		t := heap.Pop(&l.queue).(*target)
		l.c.metrics.delay.Observe(now.Sub(t.due).Seconds())
		l.inflight++
		if l.inflight > l.workers {
			l.workers++
			l.wg.Go(func() { l.work(ctx) })
		}
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
