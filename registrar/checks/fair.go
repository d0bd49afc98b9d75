package checks

import "container/heap"

// Fairness: checks that come due go first to their service's queue of
// waiting checks, in the order they came due, and each free probe slot
// goes to the waiting service with the fewest probes in flight (among
// equals, the one whose check has waited longest). A service whose probes
// hang therefore holds more than an even share of the slots only while no
// other service waits: each slot it frees goes to a service with fewer.

// share is the scheduling state of one service: its checks due and
// waiting for a slot, and its probes in flight.
type share struct {
	// ready[head:] are its checks due, oldest first (some may be gone);
	// the array is kept for the next ones.
	ready    []*target
	head     int
	inflight int
	index    int // in loop.waiting; -1 when not there
}

// shares is a min-heap of services with waiting checks, fewest probes in
// flight first, then oldest waiting check.
type shares []*share

func (q shares) Len() int { return len(q) }
func (q shares) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.inflight != b.inflight {
		return a.inflight < b.inflight
	}
	return a.ready[a.head].due.Before(b.ready[b.head].due)
}
func (q shares) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *shares) Push(x any) {
	s := x.(*share)
	s.index = len(*q)
	*q = append(*q, s)
}
func (q *shares) Pop() any {
	old := *q
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	s.index = -1
	return s
}

// shareOf returns the share of service name, made on first use.
func (l *loop) shareOf(name string) *share {
	s := l.shares[name]
	if s == nil {
		s = &share{index: -1}
		l.shares[name] = s
	}
	return s
}

// wait queues t, which is due, behind its service's waiting checks.
func (l *loop) wait(t *target) {
	s := t.inst.share
	s.ready = append(s.ready, t)
	if s.index < 0 {
		heap.Push(&l.waiting, s)
	}
}

// take returns the next waiting check to probe, counted in flight for its
// service, or nil when none waits.
func (l *loop) take() *target {
	for len(l.waiting) > 0 {
		s := l.waiting[0]
		t := s.ready[s.head]
		s.ready[s.head] = nil
		s.head++
		if t.gone {
			l.settleShare(s)
			continue
		}
		s.inflight++
		l.settleShare(s)
		return t
	}
	return nil
}

// finished counts a probe of s as no longer in flight.
func (l *loop) finished(s *share) {
	s.inflight--
	if s.index >= 0 {
		heap.Fix(&l.waiting, s.index)
	}
}

// settleShare puts s, at the top of the heap, back in order after its
// queue or count changed, or out of the heap when nothing of it waits.
func (l *loop) settleShare(s *share) {
	if s.head == len(s.ready) {
		s.ready, s.head = s.ready[:0], 0
		heap.Remove(&l.waiting, s.index)
		return
	}
	heap.Fix(&l.waiting, s.index)
}
