package caddymodule

import (
	"sync/atomic"
	"testing"
)

func TestForwarderStart(t *testing.T) {
	cs := []candidate{{"a:1", 1, "s/a"}, {"b:1", 3, "s/b"}, {"c:1", 1, "s/c"}}
	t.Run("weighted round robin", func(t *testing.T) {
		f := newForwarder(0, 0, policyRoundRobin, nil)
		var rr atomic.Uint64
		got := make([]int, len(cs))
		for range 50 { // 10 rounds of total weight 5
			got[f.start(cs, &rr)]++
		}
		if got[0] != 10 || got[1] != 30 || got[2] != 10 {
			t.Errorf("picks %v, want [10 30 10]", got)
		}
	})
	t.Run("least conn", func(t *testing.T) {
		f := newForwarder(0, 0, policyLeastConn, nil)
		f.counter("a:1").Store(2)
		f.counter("b:1").Store(1)
		f.counter("c:1").Store(5)
		var rr atomic.Uint64
		for range 5 {
			if i := f.start(cs, &rr); i != 1 {
				t.Fatalf("picked %d, want 1 (fewest connections)", i)
			}
		}
		f.counter("a:1").Store(1) // a tie: taken in turn
		seen := map[int]bool{}
		for range 4 {
			seen[f.start(cs, &rr)] = true
		}
		if !seen[0] || !seen[1] || seen[2] {
			t.Errorf("ties picked %v, want 0 and 1 in turn", seen)
		}
	})
}
