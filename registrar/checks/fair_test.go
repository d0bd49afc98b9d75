package checks

import (
	"testing"
	"time"
)

// TestFairTake: a free slot goes to the waiting service with the fewest
// probes in flight, whatever the order its checks came due in; among
// equals to the oldest waiting check; checks that are gone are skipped.
func TestFairTake(t *testing.T) {
	l := &loop{shares: map[string]*share{}}
	base := time.Now()
	due := func(svc string, at int) *target {
		tg := &target{inst: &inst{share: l.shareOf(svc)}, due: base.Add(time.Duration(at) * time.Millisecond), index: -1}
		l.wait(tg)
		return tg
	}
	var hostile []*target
	for i := range 6 {
		hostile = append(hostile, due("hostile", i))
	}
	// The hostile service's first four take every slot...
	for i := range 4 {
		if got := l.take(); got != hostile[i] {
			t.Fatalf("take %d: got %p, want hostile[%d]", i, got, i)
		}
	}
	victim := due("victim", 10)
	other := due("other", 20)
	gone := due("third", 5)
	gone.gone = true
	// ...then a slot frees: it goes to the victim (0 in flight) although
	// the hostile service's checks came due first; the next to other.
	l.finished(l.shares["hostile"])
	if got := l.take(); got != victim {
		t.Fatalf("after a hostile probe ended: got %p, want the victim's check", got)
	}
	if got := l.take(); got != other {
		t.Fatalf("next: got %p, want the other service's check", got)
	}
	// Now hostile has 3 in flight, victim and other 1: hostile's waiting
	// checks get what is left, in order; the gone one is never handed out.
	if got := l.take(); got != hostile[4] {
		t.Fatalf("next: got %p, want hostile[4]", got)
	}
	if got := l.take(); got != hostile[5] {
		t.Fatalf("next: got %p, want hostile[5]", got)
	}
	if got := l.take(); got != nil || len(l.waiting) != 0 {
		t.Fatalf("nothing waits, but take gave %p (%d shares waiting)", got, len(l.waiting))
	}
	if s := l.shares["hostile"]; s.inflight != 5 || s.index != -1 || len(s.ready) != 0 {
		t.Errorf("hostile share: %d in flight, index %d, %d ready", s.inflight, s.index, len(s.ready))
	}
}
