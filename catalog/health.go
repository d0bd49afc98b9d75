package catalog

import (
	"encoding/json"
	"fmt"
	"time"
)

// Instance states, as the API shows them. Checks set passing, warning or
// critical; an operator sets maintenance; a drain sets draining.
const (
	StatePassing     = "passing"
	StateWarning     = "warning"
	StateCritical    = "critical"
	StateMaintenance = "maintenance"
	StateDraining    = "draining"
)

// MaxCheckOutput is the most bytes of a probe's output kept with a state.
const MaxCheckOutput = 512

// MaxReasonLength is the longest maintenance reason.
const MaxReasonLength = 256

// Health is the outcome of an instance's checks, written by the registrar
// that checks it only when the state changes, under the instance's lease.
// An instance with no Health is passing.
type Health struct {
	// State is StatePassing, StateWarning or StateCritical.
	State string `json:"state"`
	// Output says why: the failing probe's error or status, truncated to
	// MaxCheckOutput bytes.
	Output string `json:"output,omitempty"`
	// Since is when the state was entered.
	Since time.Time `json:"since"`
	// By is the id of the registrar that checked.
	By string `json:"by,omitempty"`

	Lease int64 `json:"-"`
}

// Maintenance takes an instance out of rotation without deregistering it.
type Maintenance struct {
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`

	Lease int64 `json:"-"`
}

// Drain marks an instance as leaving: readers stop sending it new traffic.
type Drain struct {
	Since time.Time `json:"since"`

	Lease int64 `json:"-"`
}

// EncodeHealth returns the stored form of h.
func EncodeHealth(h *Health) ([]byte, error) { return json.Marshal(h) }

// EncodeMaintenance returns the stored form of m.
func EncodeMaintenance(m *Maintenance) ([]byte, error) { return json.Marshal(m) }

// EncodeDrain returns the stored form of d.
func EncodeDrain(d *Drain) ([]byte, error) { return json.Marshal(d) }

// DecodeHealth decodes and checks a health value.
func DecodeHealth(b []byte) (*Health, error) {
	var h Health
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode health: %w", err)
	}
	switch h.State {
	case StatePassing, StateWarning, StateCritical:
	default:
		return nil, fmt.Errorf("decode health: state %q is not passing, warning or critical", truncate(h.State, 40))
	}
	return &h, nil
}

// DecodeMaintenance decodes a maintenance value.
func DecodeMaintenance(b []byte) (*Maintenance, error) {
	var m Maintenance
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode maintenance: %w", err)
	}
	return &m, nil
}

// DecodeDrain decodes a drain value.
func DecodeDrain(b []byte) (*Drain, error) {
	var d Drain
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode drain: %w", err)
	}
	return &d, nil
}

// State returns the instance's state: maintenance, then draining, then
// what its checks say (passing when it has no checks or none has failed).
func (in *Instance) State() string {
	switch {
	case in.Maintenance != nil:
		return StateMaintenance
	case in.Drain != nil:
		return StateDraining
	case in.Health != nil:
		return in.Health.State
	}
	return StatePassing
}

// Listed reports whether the API's default listing shows the instance:
// every state but critical and maintenance.
func (in *Instance) Listed() bool {
	s := in.State()
	return s != StateCritical && s != StateMaintenance
}

// serving returns the instances that new traffic goes to: passing and
// warning ones. When there are none but critical ones, it returns every
// critical one — a check that fails everywhere more likely says the checks
// or their network are wrong than that every instance is down, so NetSel
// serves them all rather than nothing (Envoy's panic threshold at 100 %).
// Instances in maintenance or draining are never served.
func serving(all []*Instance) []*Instance {
	var good, critical int
	for _, in := range all {
		switch in.State() {
		case StatePassing, StateWarning:
			good++
		case StateCritical:
			critical++
		}
	}
	if good == len(all) {
		return all
	}
	keep := StatePassing
	n := good
	if good == 0 {
		keep, n = StateCritical, critical
	}
	out := make([]*Instance, 0, n)
	for _, in := range all {
		s := in.State()
		if s == keep || (keep == StatePassing && s == StateWarning) {
			out = append(out, in)
		}
	}
	return out
}
