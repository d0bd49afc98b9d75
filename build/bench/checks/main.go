// Command checks measures NetSel's active health checks (issue 11), in one
// run on one embedded etcd: two registrars share the HTTP checks of
// -instances instances every -interval; it reports the probes each runs a
// second, the process CPU per 1,000 probes (less a baseline window with
// checks off, same registrars and instances), the etcd writes in steady
// state (target: none) and when -flip instances fail and recover (target:
// one per state change), and, side by side in interleaved rounds, the
// registration and heartbeat throughput of a registrar with checks off
// against the same while it checks its share (target: ≥ 0.90). The
// instances' backends answer from a child process (this binary with
// -serve-backends), outside the measured CPU. It prints a markdown report.
//
//	go run ./build/bench/checks [-instances 10000] [-window 30s] [-flip 100] [-rounds 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/netsel/netsel/catalog"
)

// ks is the keyspace the registrars write.
var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// options are the command-line settings.
type options struct {
	instances  int
	services   int
	interval   time.Duration
	window     time.Duration
	flip       int
	clients    int
	duration   time.Duration
	rounds     int
	dataParent string
	cpuprofile string
	backend    backendOptions
}

func main() {
	var o options
	var serve bool
	flag.IntVar(&o.instances, "instances", 10000, "instances with an HTTP check")
	flag.IntVar(&o.services, "services", 100, "services the checked instances (and the registrations of the side-by-side rounds) spread over")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "the checks' interval")
	flag.DurationVar(&o.window, "window", 30*time.Second, "length of the steady-state window and of the baseline window (checks off)")
	flag.IntVar(&o.flip, "flip", 100, "instances made to fail and then recover, to count the writes per state change (0: skip)")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients of the side-by-side registration and heartbeat loads")
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "length of one side-by-side load")
	flag.IntVar(&o.rounds, "rounds", 3, "side-by-side rounds, each with checks off and on (order ab, ba, ab, ...); medians are reported")
	flag.StringVar(&o.dataParent, "dir", os.TempDir(), "parent `directory` of the embedded etcd's temporary data directory")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the steady-state window (checks on) to `FILE`")
	flag.IntVar(&o.backend.listeners, "listeners", 200, "loopback ports the instances' backends share (the -flip instances have one each)")
	flag.IntVar(&o.backend.ips, "ips", 4, "loopback addresses (127.0.0.10 on) the backend ports spread over")
	flag.BoolVar(&serve, "serve-backends", false, "internal: run as the backends' child process")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\nBenchmarks NetSel's health checks on two registrars over one embedded etcd and prints a markdown report.\n\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	o.backend.flip = o.flip
	if serve {
		if err := serveBackends(o.backend); err != nil {
			fmt.Fprintln(os.Stderr, "backends:", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 || o.instances < 2 || o.services < 1 || o.interval < catalog.MinCheckInterval || o.window <= 0 ||
		o.flip < 0 || o.flip > o.instances/2 || o.clients < 1 || o.clients > o.instances || o.duration <= 0 || o.rounds < 1 ||
		o.backend.listeners < 1 || o.backend.ips < 1 || o.backend.ips > 200 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "checks bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	loadBefore := loadavg()
	b, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer b.close()
	var rep report
	rep.loadBefore = loadBefore
	if err := b.measure(ctx, &rep); err != nil {
		return err
	}
	if err := b.finalCheck(ctx, &rep); err != nil {
		return err
	}
	rep.loadAfter = loadavg()
	rep.took = time.Since(start)
	rep.print(o)
	return nil
}
