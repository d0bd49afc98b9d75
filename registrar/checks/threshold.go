package checks

import "github.com/netsel/netsel/catalog"

// Probe outcomes.
const (
	pass = iota // the instance answered as healthy
	warn        // it answered, but asks for less traffic (HTTP 429)
	fail        // no answer in time, or a failing one
)

// result is the outcome of one probe and the text that explains it.
type result struct {
	status int
	output string
}

// threshold turns one check's probe results into its state: Failures
// failed probes in a row make it critical; from critical, Successes
// answering probes in a row make it pass again. A warning probe (429)
// counts as an answer: it resets the failures, and the check is warning
// rather than passing — at once from passing, or once the successes are
// met from critical.
type threshold struct {
	state      string // catalog.StatePassing, StateWarning or StateCritical
	fails, oks int
	output     string
}

// newThreshold returns a check's thresholds starting in state, the state
// the catalog shows for the instance: a registrar taking an instance over
// carries on from there rather than rewriting it.
func newThreshold(state string) threshold {
	if state != catalog.StateWarning && state != catalog.StateCritical {
		state = catalog.StatePassing
	}
	return threshold{state: state}
}

// observe folds one probe result into t.
func (t *threshold) observe(r result, failures, successes int) {
	t.output = r.output
	if r.status == fail {
		t.oks = 0
		t.fails++
		if t.fails >= failures {
			t.state = catalog.StateCritical
		}
		return
	}
	t.fails = 0
	t.oks++
	if t.state == catalog.StateCritical && t.oks < successes {
		return
	}
	t.state = catalog.StatePassing
	if r.status == warn {
		t.state = catalog.StateWarning
	}
}

// rank orders states from best to worst.
func rank(state string) int {
	switch state {
	case catalog.StateWarning:
		return 1
	case catalog.StateCritical:
		return 2
	}
	return 0
}

// worst returns the state of an instance from its checks' thresholds, the
// worst of them, and the output of the first check in that state.
func worst(ts []*target) (state, output string) {
	state = catalog.StatePassing
	best := -1
	for _, t := range ts {
		if r := rank(t.th.state); r > best {
			best, state, output = r, t.th.state, t.th.output
		}
	}
	return state, output
}

// shown returns the state the catalog shows for an instance's checks:
// its health key's, passing when absent.
func shown(in *catalog.Instance) string {
	if in.Health == nil {
		return catalog.StatePassing
	}
	return in.Health.State
}
