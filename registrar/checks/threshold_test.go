package checks

import (
	"fmt"
	"testing"

	"github.com/netsel/netsel/catalog"
)

func TestThreshold(t *testing.T) {
	const P, W, F = pass, warn, fail
	const ok, wa, cr = catalog.StatePassing, catalog.StateWarning, catalog.StateCritical
	for _, tc := range []struct {
		name                string
		start               string
		failures, successes int
		probes              []int
		want                []string // the state after each probe
	}{
		{"passes", ok, 3, 1, []int{P, P}, []string{ok, ok}},
		{"critical after 3 fails in a row", ok, 3, 1, []int{F, F, F, F}, []string{ok, ok, cr, cr}},
		{"a pass resets the count", ok, 3, 1, []int{F, F, P, F, F, F}, []string{ok, ok, ok, ok, ok, cr}},
		{"a warning resets the count", ok, 2, 1, []int{F, W, F, F}, []string{ok, wa, wa, cr}},
		{"back after one pass", ok, 1, 1, []int{F, P}, []string{cr, ok}},
		{"back after 3 passes in a row", ok, 1, 3, []int{F, P, P, F, P, P, P}, []string{cr, cr, cr, cr, cr, cr, ok}},
		{"warning at once from passing", ok, 3, 2, []int{W, P, W}, []string{wa, ok, wa}},
		{"from critical a warning counts as an answer", ok, 1, 2, []int{F, W, W, P}, []string{cr, cr, wa, ok}},
		{"a fail from warning needs the threshold", wa, 2, 1, []int{F, F}, []string{wa, cr}},
		{"taken over critical stays until successes", cr, 3, 2, []int{P, P}, []string{cr, ok}},
		{"taken over critical stays critical on fails", cr, 3, 1, []int{F}, []string{cr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newThreshold(tc.start)
			for i, p := range tc.probes {
				th.observe(result{status: p, output: fmt.Sprint(i)}, tc.failures, tc.successes)
				if th.state != tc.want[i] {
					t.Fatalf("after probe %d (%v): %s, want %s", i, tc.probes[:i+1], th.state, tc.want[i])
				}
			}
		})
	}
}

func TestWorst(t *testing.T) {
	mk := func(states ...string) []*target {
		var ts []*target
		for i, s := range states {
			ts = append(ts, &target{th: threshold{state: s, output: fmt.Sprint(i)}})
		}
		return ts
	}
	for _, tc := range []struct {
		states    []string
		want, out string
	}{
		{[]string{catalog.StatePassing, catalog.StatePassing}, catalog.StatePassing, "0"},
		{[]string{catalog.StatePassing, catalog.StateWarning}, catalog.StateWarning, "1"},
		{[]string{catalog.StateCritical, catalog.StateWarning, catalog.StateCritical}, catalog.StateCritical, "0"},
	} {
		s, out := worst(mk(tc.states...))
		if s != tc.want || out != tc.out {
			t.Errorf("worst(%v) = %s %q, want %s %q", tc.states, s, out, tc.want, tc.out)
		}
	}
}
