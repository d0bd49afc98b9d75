package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
	"github.com/netsel/netsel/catalog"
)

// report is what the run measured.
type report struct {
	baseline, steady windowResult
	fail, recover    flipResult
	// reg and hb are the side-by-side loads, [0] checks off and [1] on,
	// one result a round.
	reg, hb [2][]loadgen.Result
	// loadedProbes is the probes/s of the loaded registrar during each
	// round's loads with checks on.
	loadedProbes []float64
	healthLeft   int
	changes      int64

	loadBefore, loadAfter string
	took                  time.Duration
}

func (rep *report) print(o options) {
	fmt.Printf("## Health checks: %d instances, HTTP checks every %v, two registrars\n\n", o.instances, o.interval)
	fmt.Printf("GOMAXPROCS %d on %d CPUs, %s; registrars, load clients and etcd in one process (etcd data under %s), "+
		"the instances' HTTP backends in a child process (%d shared ports + %d, on %d loopback addresses). "+
		"Load average before: %s, after: %s. The run took %v.\n\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version(), o.dataParent,
		o.backend.listeners, o.flip, o.backend.ips, rep.loadBefore, rep.loadAfter, rep.took.Round(time.Second))
	rep.printSteady(o)
	if o.flip > 0 {
		rep.printFlips(o)
	}
	rep.printSideBySide(o)
}

func (rep *report) printSteady(o options) {
	s, base := rep.steady, rep.baseline
	total := s.probes(0) + s.probes(1)
	fmt.Printf("### Steady state (window %v, nothing changing)\n\n", o.window)
	fmt.Println("| registrar | instances it checks | probes | probes/s | share of the probes |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	for i := range 2 {
		fmt.Printf("| bench-%d | %d | %d | %.0f | %.1f %% |\n", i+1, s.to[i].Owned, s.probes(i),
			float64(s.probes(i))/s.elapsed.Seconds(), 100*float64(s.probes(i))/float64(max(total, 1)))
	}
	fmt.Printf("| both | %d | %d | %.0f (expected %d / %v = %.0f) | |\n\n", s.to[0].Owned+s.to[1].Owned, total,
		float64(total)/s.elapsed.Seconds(), o.instances, o.interval, float64(o.instances)/o.interval.Seconds())

	scaled := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * s.elapsed.Seconds() / base.elapsed.Seconds())
	}
	net, netBackend := s.cpu-scaled(base.cpu), s.backend-scaled(base.backend)
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)*1000/float64(max(total, 1)))
	}
	fmt.Printf("- CPU of the process (user+sys): %.1f %% of a CPU with checks off (baseline window: same registrars, instances and etcd), %.1f %% while checking; "+
		"the checks' share: **%s CPU per 1,000 probes**. The backends answering them (child process, not counted above): %s per 1,000 probes.\n",
		pct(base.cpu, base.elapsed), pct(s.cpu, s.elapsed), per(net), per(netBackend))
	fmt.Printf("- etcd writes (revisions, every key): %d in the baseline window, **%d while checking** (%.2f/s; health keys: %d put, %d deleted; other keys: %d). Target 0: %s.\n\n",
		base.w.Revisions, s.w.Revisions, float64(s.w.Revisions)/s.elapsed.Seconds(), s.w.HealthPuts, s.w.HealthDel, s.w.Other,
		verdict(s.w.Revisions == 0))
}

func (rep *report) printFlips(o options) {
	n := o.flip
	fmt.Printf("### State changes: %d instances' backends answer 500, then 200 again\n\n", n)
	fmt.Printf("Counted from the flip until every expected write was seen, and one interval (%v) more. Checks: failures %d, successes %d (the defaults).\n\n", o.interval, catalog.DefaultFailures, catalog.DefaultSuccesses)
	fmt.Println("| | health puts | health deletes | other writes | etcd revisions | states written (checkers) | all written after | one write per change |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	row := func(name string, f flipResult, puts, dels int) {
		ok := f.complete && f.w.HealthPuts == puts && f.w.HealthDel == dels && f.w.Other == 0 && f.w.Revisions == int64(n) && f.changes == int64(n)
		after := fmt.Sprintf("%.1f s", f.all.Seconds())
		if !f.complete {
			after = "not all in " + after
		}
		fmt.Printf("| %s | %d | %d | %d | %d | %d | %s | %s |\n", name, f.w.HealthPuts, f.w.HealthDel, f.w.Other, f.w.Revisions, f.changes, after, verdict(ok))
	}
	row(fmt.Sprintf("%d go critical", n), rep.fail, n, 0)
	row(fmt.Sprintf("%d pass again", n), rep.recover, 0, n)
	fmt.Printf("\nWhole run: %d states written by the checkers (expected %d), %d health keys left at the end (expected 0).\n\n", rep.changes, 2*n, rep.healthLeft)
}

func (rep *report) printSideBySide(o options) {
	fmt.Printf("### Registrar throughput with checks off (a) and while checking its share (b)\n\n")
	fmt.Printf("%d clients, %v a load, %d rounds (order a b, b a, a b, ...); (a) both registrars with checks off, "+
		"(b) both checking (the loaded one its share, the other the rest, in the same process; the backends answer on the same CPUs). Medians; ratios are medians of the per-round ratios.\n\n",
		o.clients, o.duration, o.rounds)
	fmt.Println("| load | (a) ops/s | (b) ops/s | (a) runs | (b) runs | (b)/(a) per round | (b)/(a) | p99 ms (a) / (b) | errors | target ≥ 0.90 |")
	fmt.Println("| --- | ---: | ---: | --- | --- | --- | ---: | --- | ---: | --- |")
	row := func(name string, rs [2][]loadgen.Result) {
		a, b := loadgen.Summarize(rs[0]), loadgen.Summarize(rs[1])
		var ratios []float64
		for i := range min(len(rs[0]), len(rs[1])) {
			ratios = append(ratios, rs[1][i].Rate()/rs[0][i].Rate())
		}
		m := loadgen.Median(slices.Clone(ratios))
		fmt.Printf("| %s | %.0f | %.0f | %s | %s | %s | **%.2f** | %s / %s | %d | %s |\n", name, a.Rate, b.Rate,
			list(a.Rates, "%.0f"), list(b.Rates, "%.0f"), list(ratios, "%.2f"), m,
			loadgen.MS(a.P99), loadgen.MS(b.P99), a.Errs+b.Errs, verdict(m >= 0.9))
	}
	row("registrations", rep.reg)
	row("heartbeats", rep.hb)
	fmt.Printf("\nProbes/s of the loaded registrar during (b): %s (its share when idle: about %.0f).\n",
		list(rep.loadedProbes, "%.0f"), float64(o.instances)/o.interval.Seconds()/2)
}

func pct(cpu, wall time.Duration) float64 { return 100 * cpu.Seconds() / wall.Seconds() }

func list(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, ", ")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
