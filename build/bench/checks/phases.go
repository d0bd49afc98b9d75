package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/checks"
)

// settle is how long a pair runs after a restart before it is measured:
// its indexes have read etcd, but their start is not steady state.
const settle = 3 * time.Second

// windowResult is one idle window of the pair: no load, checks on or off.
type windowResult struct {
	elapsed      time.Duration
	cpu, backend time.Duration // this process's; the backends' child's
	from, to     [2]checks.Stats
	w            writes
}

func (r windowResult) probes(i int) int64 { return r.to[i].Probes - r.from[i].Probes }

// flipResult is the flipped instances failing, or recovering.
type flipResult struct {
	w        writes
	changes  int64         // state changes the checkers wrote
	all      time.Duration // until the last expected write was seen
	complete bool          // every expected write was seen in time
}

// measure runs the phases: the baseline window (checks off), then rounds
// of the side-by-side loads with checks off (a) and on (b), the first time
// checks are on preceded by the steady-state window and the flips.
func (b *bench) measure(ctx context.Context, rep *report) error {
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	var err error
	fmt.Fprintf(os.Stderr, "baseline window (checks off), %v\n", b.o.window)
	if rep.baseline, err = b.window(ctx); err != nil {
		return err
	}
	steady := false
	for r := range b.o.rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			restarted := b.pair[0] == nil || b.checking != on
			if err := b.usePair(ctx, on); err != nil {
				return err
			}
			switch {
			case on && !steady:
				steady = true
				if err := b.steadyAndFlips(ctx, rep); err != nil {
					return err
				}
			case restarted:
				if err := sleep(ctx, settle); err != nil {
					return err
				}
			}
			if err := b.sideBySide(ctx, rep, r, on); err != nil {
				return err
			}
		}
	}
	return nil
}

// steadyAndFlips measures the steady-state window of the checking pair,
// after one interval (every instance has had its first probe), then the
// writes while the flip instances fail and recover.
func (b *bench) steadyAndFlips(ctx context.Context, rep *report) error {
	if err := sleep(ctx, b.o.interval); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "steady-state window (checks on), %v\n", b.o.window)
	stopProfile, err := startProfile(b.o.cpuprofile)
	if err != nil {
		return err
	}
	rep.steady, err = b.window(ctx)
	stopProfile()
	if err != nil {
		return err
	}
	if b.o.flip == 0 {
		return nil
	}
	fmt.Fprintf(os.Stderr, "%d instances failing\n", b.o.flip)
	if rep.fail, err = b.flipPhase(ctx, true); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d instances recovering\n", b.o.flip)
	rep.recover, err = b.flipPhase(ctx, false)
	return err
}

// window measures the pair idle for -window.
func (b *bench) window(ctx context.Context) (windowResult, error) {
	ww, err := watchWrites(ctx, b.raw)
	if err != nil {
		return windowResult{}, err
	}
	defer ww.stop()
	r := windowResult{from: b.stats()}
	cpu0, be0, t0 := cpuTime(), b.be.cpu(), time.Now()
	if err := sleep(ctx, b.o.window); err != nil {
		return r, err
	}
	r.elapsed = time.Since(t0)
	r.cpu, r.backend = cpuTime()-cpu0, b.be.cpu()-be0
	r.to = b.stats()
	r.w, err = ww.counts(ctx)
	return r, err
}

// flipPhase makes the flip instances' backends fail (or answer again) and
// counts the writes until each has changed state, and one interval more,
// so that each has been probed again after its change.
func (b *bench) flipPhase(ctx context.Context, fail bool) (flipResult, error) {
	ww, err := watchWrites(ctx, b.raw)
	if err != nil {
		return flipResult{}, err
	}
	defer ww.stop()
	from := b.stats()
	t0 := time.Now()
	if err := b.be.setFailing(ctx, b.hc, fail); err != nil {
		return flipResult{}, err
	}
	probes := catalog.DefaultSuccesses
	if fail {
		probes = catalog.DefaultFailures
	}
	limit := time.Duration(probes+1)*b.o.interval + 15*time.Second
	var r flipResult
	err = waitFor(ctx, limit, "the state changes", func() bool {
		n := ww.peek()
		if fail {
			return n.HealthPuts >= b.o.flip
		}
		return n.HealthDel >= b.o.flip
	})
	r.all, r.complete = time.Since(t0), err == nil
	if err != nil && ctx.Err() != nil {
		return r, err
	}
	if err := sleep(ctx, b.o.interval); err != nil {
		return r, err
	}
	if r.w, err = ww.counts(ctx); err != nil {
		return r, err
	}
	to := b.stats()
	r.changes = to[0].Changes - from[0].Changes + to[1].Changes - from[1].Changes
	return r, nil
}

// sideBySide runs round r's registration load and then its heartbeat load
// on the pair's first registrar, checking (on) or not.
func (b *bench) sideBySide(ctx context.Context, rep *report, r int, on bool) error {
	c := 0
	if on {
		c = 1
	}
	fmt.Fprintf(os.Stderr, "round %d/%d, checks %s: registrations, then heartbeats, %d clients, %v each\n", r+1, b.o.rounds, onOff(on), b.o.clients, b.o.duration)
	from, t0 := b.pair[0].stats(), time.Now()
	reg := loadgen.Run(ctx, b.o.clients, b.o.duration, b.register(r, on))
	hb := loadgen.Run(ctx, b.o.clients, b.o.duration, b.heartbeat())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, res := range []loadgen.Result{reg, hb} {
		fmt.Fprintf(os.Stderr, "  %.0f ops/s, p50 %s ms, p99 %s ms, %d errors\n", res.Rate(), loadgen.MS(res.P50), loadgen.MS(res.P99), res.Errs)
		if res.FirstErr != nil {
			fmt.Fprintf(os.Stderr, "  first error: %v\n", res.FirstErr)
		}
	}
	rep.reg[c] = append(rep.reg[c], reg)
	rep.hb[c] = append(rep.hb[c], hb)
	if on {
		rep.loadedProbes = append(rep.loadedProbes, float64(b.pair[0].stats().Probes-from.Probes)/time.Since(t0).Seconds())
	}
	return nil
}

// register is a new instance (without checks) of one of the reg-
// services per op.
func (b *bench) register(r int, on bool) loadgen.Op {
	cond := onOff(on)
	return func(ctx context.Context, w, n int) error {
		return expect(ctx, b.hc, http.MethodPost,
			fmt.Sprintf("%s/v1/services/reg-%d/instances", b.pair[0].URL, (w*7+n)%b.o.services),
			fmt.Sprintf(`{"id":"r%d%sw%dn%d","address":"127.0.0.1","port":8080,"ttl":"%s"}`, r, cond, w, n, longTTL))
	}
}

// heartbeat is a heartbeat of one of the checked instances per op: client
// w cycles through instances w, w+clients, ...
func (b *bench) heartbeat() loadgen.Op {
	return func(ctx context.Context, w, n int) error {
		per := (b.o.instances - w + b.o.clients - 1) / b.o.clients
		i := w + (n%per)*b.o.clients
		return expect(ctx, b.hc, http.MethodPut,
			fmt.Sprintf("%s/v1/services/chk-%d/instances/c%d/heartbeat", b.pair[0].URL, i%b.o.services, i), "")
	}
}

// finalCheck counts the health keys left in etcd (none: every flipped
// instance recovered) and the state changes of the whole run.
func (b *bench) finalCheck(ctx context.Context, rep *report) error {
	resp, err := b.raw.Get(ctx, ks.Prefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("final count: %w", err)
	}
	for _, kv := range resp.Kvs {
		if k, ok := ks.ParseKey(string(kv.Key)); ok && k.Kind == catalog.KindHealth {
			rep.healthLeft++
		}
	}
	rep.changes = b.changes
	if b.checking {
		s := b.stats()
		rep.changes += s[0].Changes + s[1].Changes
	}
	return nil
}

// startProfile starts a CPU profile into file, unless it is empty, and
// returns the function that stops it.
func startProfile(file string) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Fprintf(os.Stderr, "  wrote %s\n", file)
	}, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
