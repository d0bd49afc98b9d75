package checks_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// switchable is a TCP listener on a fixed loopback port that can be shut
// (connections refused) and opened again.
type switchable struct {
	t    *testing.T
	addr string
	ln   net.Listener
}

func (s *switchable) open() {
	s.t.Helper()
	var err error
	testenv.Eventually(s.t, 5*time.Second, func() bool {
		s.ln, err = net.Listen("tcp", s.addr)
		return err == nil
	}, "listen %s again: %v", s.addr, err)
	ln := s.ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (s *switchable) shut() { s.ln.Close() }

// states counts the instances of service per state in the registrar's
// catalog.
func states(e *catalog.Entry) map[string]int {
	m := map[string]int{}
	if e == nil {
		return m
	}
	for _, in := range e.Instances() {
		m[in.State()]++
	}
	return m
}

// TestWritesOnlyOnChange counts the writes to health keys: none while
// nothing changes however many probes run, one per instance when its
// state changes, and none when a joining registrar takes over instances
// whose state it agrees with.
func TestWritesOnlyOnChange(t *testing.T) {
	const n = 20
	etcd := testenv.StartEtcd(t)
	a := testenv.StartRegistrar(t, etcd.URL, checked("reg-a", 2*time.Second, nil))
	ca := a.Registrar.Checker()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw := &switchable{t: t, addr: ln.Addr().String()}
	ln.Close()
	sw.open()
	t.Cleanup(func() { sw.shut() })
	port := sw.ln.Addr().(*net.TCPAddr).Port

	w := watchHealth(t, etcd.Client)
	check := api.Check{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(300 * time.Millisecond), Failures: 2}
	for i := range n {
		register(t, a.URL, "w", api.RegisterRequest{ID: fmt.Sprintf("i-%d", i), Address: "127.0.0.1", Port: port, TTL: api.Duration(time.Minute), Checks: []api.Check{check}})
	}
	snap := func() *catalog.Entry {
		e, _ := a.Registrar.Index().Snapshot().Service("w")
		return e
	}

	// Steady and passing: probes, no writes.
	before := ca.Stats().Probes
	quiet(t, w, 3*time.Second)
	if p := ca.Stats().Probes - before; p < 2*n {
		t.Fatalf("%d probes in 3s of %d instances checked every second", p, n)
	}

	// Down: one put per instance, critical everywhere.
	sw.shut()
	testenv.Eventually(t, 10*time.Second, func() bool { return states(snap())[catalog.StateCritical] == n },
		"the instances never all went critical: %v", states(snap()))
	e := snap()
	in := e.Instances()[0]
	if in.Health == nil || in.Health.By != "reg-a" || in.Health.Output == "" || in.Health.Lease != in.Lease {
		t.Errorf("health %+v of lease %x", in.Health, in.Lease)
	}
	t.Logf("critical output: %s", in.Health.Output)
	w.await(t, "going critical", n, 0)

	// A second registrar joins and takes half: it agrees, and writes nothing.
	w.reset()
	b := testenv.StartRegistrar(t, etcd.URL, checked("reg-b", 2*time.Second, nil))
	cb := b.Registrar.Checker()
	testenv.Eventually(t, 5*time.Second, func() bool { return ca.Stats().Owned+cb.Stats().Owned == n && cb.Stats().Owned > 0 },
		"reg-b never took a share: %+v %+v", ca.Stats(), cb.Stats())
	before = cb.Stats().Probes
	quiet(t, w, 3*time.Second)
	if p := cb.Stats().Probes - before; p < cb.Stats().Owned {
		t.Fatalf("reg-b ran %d probes of its %d instances in 3s", p, cb.Stats().Owned)
	}

	// Up again: one delete per instance (absent is passing).
	sw.open()
	testenv.Eventually(t, 10*time.Second, func() bool { return states(snap())[catalog.StatePassing] == n },
		"the instances never all passed again: %v", states(snap()))
	w.await(t, "passing again", 0, n)
	w.reset()
	quiet(t, w, 2*time.Second)
}

// await waits for the watch to have seen puts and dels writes of health
// keys (the watch may lag the registrar's index), and fails the test if
// it sees others.
func (w *healthWatch) await(t *testing.T, when string, puts, dels int) {
	t.Helper()
	var p, d int
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, d = w.counts()
		if (p == puts && d == dels) || p > puts || d > dels || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p != puts || d != dels {
		t.Errorf("%s: %d puts, %d deletes of health keys, want %d and %d", when, p, d, puts, dels)
	}
}

// quiet fails the test when a health key is written during d.
func quiet(t *testing.T, w *healthWatch, d time.Duration) {
	t.Helper()
	w.reset()
	time.Sleep(d) // a span of time with nothing in it, not a wait for something
	if puts, dels := w.counts(); puts+dels != 0 {
		t.Errorf("%d puts and %d deletes of health keys in %v while no state changed", puts, dels, d)
	}
}

func register(t *testing.T, base, svc string, req api.RegisterRequest) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"address":%q,"port":%d,"ttl":"60s","checks":[{"type":%q,"interval":%q,"timeout":%q,"failures":%d}]}`,
		req.ID, req.Address, req.Port, req.Checks[0].Type, req.Checks[0].Interval.Std(), req.Checks[0].Timeout.Std(), req.Checks[0].Failures)
	if err := post(base+"/v1/services/"+svc+"/instances", body); err != nil {
		t.Fatal(err)
	}
}

// TestWriteRetried: a state change that etcd cannot take (the registrar's
// connection to it is cut) is written once etcd is back, after a later
// probe: it is not lost.
func TestWriteRetried(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	p := testenv.StartProxy(t, etcd.URL[len("http://"):])
	a := testenv.StartRegistrar(t, "http://"+p.Addr(), checked("reg-a", 10*time.Second, nil))
	ca := a.Registrar.Checker()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	sw := &switchable{t: t, addr: ln.Addr().String()}
	ln.Close()
	sw.open()
	register(t, a.URL, "w", api.RegisterRequest{ID: "i", Address: "127.0.0.1", Port: port,
		Checks: []api.Check{{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(200 * time.Millisecond), Failures: 1}}})
	testenv.Eventually(t, 5*time.Second, func() bool { return ca.Stats().Owned == 1 && ca.Stats().Probes > 0 }, "never checked: %+v", ca.Stats())

	p.Cut()
	sw.shut()
	testenv.Eventually(t, 15*time.Second, func() bool { return ca.Stats().WriteFailures >= 2 }, "no write failed while etcd was cut off: %+v", ca.Stats())
	p.Restore()
	hk := ks.HealthKey("w", "i")
	testenv.Eventually(t, 15*time.Second, func() bool {
		resp, err := etcd.Client.Get(context.Background(), hk)
		if err != nil || len(resp.Kvs) != 1 {
			return false
		}
		h, err := catalog.DecodeHealth(resp.Kvs[0].Value)
		return err == nil && h.State == catalog.StateCritical
	}, "the critical state was never written after etcd came back: %+v", ca.Stats())
	t.Logf("%+v", ca.Stats())
}
