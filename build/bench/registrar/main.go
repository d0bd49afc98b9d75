// Command registrar measures NetSel's registrar against raw etcd, in one
// process on one embedded etcd: registrations/s through the REST API next to
// raw Grant+Put, and heartbeats/s through the REST API next to raw
// KeepAliveOnce, with N concurrent clients, interleaved and repeated. While
// heartbeats load the registrar it also checks that instances still expire
// in time: within TTL+1s of their last heartbeat, and within 1.5×TTL when the
// registrar that took the heartbeats dies. It prints a markdown report.
//
//	go run ./build/bench/registrar [-clients 64] [-duration 10s] [-runs 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
)

// options are the command-line settings.
type options struct {
	clients    int
	duration   time.Duration
	runs       int
	services   int
	instances  int
	sample     int
	probeTTL   time.Duration
	cpuprofile string
	memprofile string
	cases      string
	dataParent string
	h2c        bool
}

func main() {
	var o options
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients per case")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of one timed run of one case")
	flag.IntVar(&o.runs, "runs", 3, "interleaved runs of every case; medians are reported")
	flag.IntVar(&o.services, "services", 50, "services the registrations and heartbeats spread over")
	flag.IntVar(&o.instances, "instances", 10000, "pre-registered instances (and raw leases) the heartbeats cycle through")
	flag.IntVar(&o.sample, "expiry-sample", 20, "instances per expiry probe (0: no probes)")
	flag.DurationVar(&o.probeTTL, "expiry-ttl", 5*time.Second, "TTL of the expiry probes' instances")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each case of the last run to `PREFIX`.<case>.pprof")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile after each case of the last run to `PREFIX`.<case>.heap (compare cases with pprof -sample_index=alloc_space -base)")
	flag.StringVar(&o.dataParent, "dir", os.TempDir(), "parent `directory` of the embedded etcd's temporary data directory (e.g. /dev/shm to take the disk out)")
	flag.BoolVar(&o.h2c, "h2c", false, "serve the registrar's handler over unencrypted HTTP/2 too, and send the REST requests over it (an experiment: Registrar.Serve speaks HTTP/1.1)")
	flag.StringVar(&o.cases, "cases", "abcd", "cases to run, a subset of abcd")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\nBenchmarks the NetSel registrar against raw etcd on one embedded etcd and prints a markdown report.\n\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.clients < 1 || o.runs < 1 || o.duration <= 0 || o.services < 1 || o.instances < o.clients || o.sample < 0 || o.cases == "" || strings.Trim(o.cases, "abcd") != "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "registrar bench:", err)
		os.Exit(1)
	}
}

// benchCase is one measured case.
type benchCase struct {
	key, name string
	op        func(run int) loadgen.Op
}

func run(ctx context.Context, o options) error {
	loadBefore := loadavg()
	b, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer b.close()

	cases := []benchCase{
		{"a", "(a) raw etcd Grant+Put", b.rawGrantPut},
		{"b", "(b) registrar register (REST)", b.register},
		{"c", "(c) raw etcd KeepAliveOnce", b.rawKeepAlive},
		{"d", "(d) registrar heartbeat (REST)", b.heartbeat},
	}
	cases = slices.DeleteFunc(cases, func(c benchCase) bool { return !strings.Contains(o.cases, c.key) })
	results := map[string][]loadgen.Result{}
	var probes, died []expiry
	var renewals, beats, cached float64
	for r := range o.runs {
		for _, c := range cases {
			fmt.Fprintf(os.Stderr, "run %d/%d: %s ...\n", r+1, o.runs, c.name)
			stopProfile, err := b.profile(c.key, r == o.runs-1)
			if err != nil {
				return err
			}
			var pr *probeRun
			if c.key == "d" {
				pr = b.startProbes(ctx, r)
			}
			m0, err := b.heartbeatMetrics(ctx)
			if err != nil {
				return err
			}
			res := loadgen.Run(ctx, o.clients, o.duration, c.op(r))
			stopProfile()
			if err := b.heapProfile(c.key, r == o.runs-1); err != nil {
				return err
			}
			m1, err := b.heartbeatMetrics(ctx)
			if err != nil {
				return err
			}
			if c.key == "d" {
				renewals += m1[0] - m0[0]
				beats += m1[1] - m0[1] + m1[2] - m0[2]
				cached += m1[2] - m0[2]
				p, d, err := pr.wait()
				if err != nil {
					return err
				}
				probes, died = append(probes, p...), append(died, d...)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(os.Stderr, "  %.0f ops/s, p50 %s ms, p99 %s ms, %d errors\n", res.Rate(), loadgen.MS(res.P50), loadgen.MS(res.P99), res.Errs)
			if res.FirstErr != nil {
				fmt.Fprintf(os.Stderr, "  first error: %v\n", res.FirstErr)
			}
			results[c.key] = append(results[c.key], res)
		}
	}

	fmt.Printf("## Registrar vs raw etcd: %d clients, %v per case, median of %d interleaved runs\n\n", o.clients, o.duration, o.runs)
	fmt.Printf("GOMAXPROCS %d on %d CPUs, %s; clients, registrar and etcd in one process, etcd data under %s, REST over %s. Load average before: %s, after: %s.\n\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version(), o.dataParent, proto(o.h2c), loadBefore, loadavg())
	fmt.Println("| case | ops/s | p50 ms | p99 ms | ops/s of each run | errors |")
	fmt.Println("| --- | ---: | ---: | ---: | --- | ---: |")
	sums := map[string]loadgen.Summary{}
	for _, c := range cases {
		s := loadgen.Summarize(results[c.key])
		sums[c.key] = s
		runs := ""
		for i, v := range s.Rates {
			if i > 0 {
				runs += ", "
			}
			runs += fmt.Sprintf("%.0f", v)
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %d |\n", c.name, s.Rate, loadgen.MS(s.P50), loadgen.MS(s.P99), runs, s.Errs)
	}
	fmt.Println()
	ratio := func(num, den string, target float64) {
		var per []float64
		for i := range results[num] {
			per = append(per, results[num][i].Rate()/results[den][i].Rate())
		}
		v := sums[num].Rate / sums[den].Rate
		mark := "meets"
		if v < target {
			mark = "MISSES"
		}
		fmt.Printf("- (%s)/(%s) = %.2f, ratio of the medians (target ≥ %.1f: %s); per run: %.2f, median %.2f\n",
			num, den, v, target, mark, per, loadgen.Median(slices.Clone(per)))
	}
	if len(results["a"]) > 0 && len(results["b"]) > 0 {
		ratio("b", "a", 0.8)
	}
	if len(results["c"]) > 0 && len(results["d"]) > 0 {
		ratio("d", "c", 1.0)
	}
	if beats > 0 {
		fmt.Printf("- heartbeats answered during (d): %.0f; etcd keep-alive requests sent for them: %.0f (%.2f per heartbeat; %.0f%% answered from a renewal under 500 ms old)\n",
			beats, renewals, renewals/beats, 100*cached/beats)
	}
	if o.sample > 0 {
		fmt.Printf("\n### Expiry under the heartbeat load (TTL %v, %d instances per probe, one probe of each kind per run)\n\n", o.probeTTL, o.sample)
		late, early := worst(probes)
		fmt.Printf("- registrar alive: last heartbeat sent → key gone: max %s (bound TTL+1s = %v: %s); answered → gone: min %s\n",
			secs(late), o.probeTTL+time.Second, verdict(late <= o.probeTTL+time.Second), secs(early))
		late, early = worst(died)
		bound := o.probeTTL * 3 / 2
		fmt.Printf("- registrar died right after the last heartbeat: max %s (bound 1.5×TTL = %v: %s); min %s\n",
			secs(late), bound, verdict(late <= bound), secs(early))
	}
	return nil
}

// profile starts a CPU profile of case key when on and -cpuprofile is set,
// and returns the function that stops it.
func (b *bench) profile(key string, on bool) (func(), error) {
	if !on || b.o.cpuprofile == "" {
		return func() {}, nil
	}
	name := fmt.Sprintf("%s.%s.pprof", b.o.cpuprofile, key)
	f, err := os.Create(name)
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
		fmt.Fprintf(os.Stderr, "  wrote %s\n", name)
	}, nil
}

// heapProfile writes a heap profile when on and -memprofile is set.
func (b *bench) heapProfile(key string, on bool) error {
	if !on || b.o.memprofile == "" {
		return nil
	}
	name := fmt.Sprintf("%s.%s.heap", b.o.memprofile, key)
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	fmt.Fprintf(os.Stderr, "  wrote %s\n", name)
	return nil
}

func proto(h2c bool) string {
	if h2c {
		return "unencrypted HTTP/2 (-h2c)"
	}
	return "HTTP/1.1 keep-alive (Registrar.Serve)"
}

func worst(es []expiry) (late, early time.Duration) {
	early = time.Hour
	for _, e := range es {
		late, early = max(late, e.late), min(early, e.early)
	}
	return late, early
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "EXCEEDED"
}
