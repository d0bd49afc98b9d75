// Command soak is NetSel's soak test (issue 5, "Soak"): on loopback only, it
// starts a 3-member etcd cluster (Debian's etcd 3.4 processes) and the
// NetSel runner (build/netsel) over it, keeps thousands of instances alive
// through registrar/client's Keepalive from this one process, queries DNS
// and sends HTTP and TCP traffic through both proxies all along, SIGKILLs
// and restarts the runner and then one etcd member in the middle, samples
// memory, DNS latency, client errors and the instances in etcd every few
// seconds, and prints a markdown report. See run.sh and BENCHMARKS.md.
//
//	go build -o /tmp/netsel ./build/netsel
//	go run ./build/bench/soak -netsel /tmp/netsel -duration 2m -instances 2000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the soak's command line.
type config struct {
	netsel, etcdBin, dir, vipCIDR  string
	duration, sample, warmup       time.Duration
	instances, services, conns     int
	interval, ttl                  time.Duration
	registerRate                   float64
	dnsQPS, httpRPS, tcpCPS        float64
	runnerKillAt, etcdStopAt       float64
	runnerDown, etcdDown, recovery time.Duration
	etcdMember, etcdSignal         string
	keep                           bool
}

func parseFlags() *config {
	c := new(config)
	flag.StringVar(&c.netsel, "netsel", "", "the runner binary, built from ./build/netsel (required)")
	flag.StringVar(&c.etcdBin, "etcd-bin", "/usr/bin/etcd", "etcd server binary (Debian's etcd-server, 3.4)")
	flag.StringVar(&c.dir, "dir", "", "directory for etcd data and logs (default: a new temporary directory, removed at the end)")
	flag.StringVar(&c.vipCIDR, "vip-cidr", "127.79.0.0/16", "VIP range of the runner (not 127.77/16, a developer's own runner's)")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "steady soak after every instance has registered")
	flag.DurationVar(&c.sample, "sample", 10*time.Second, "sampling period")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Minute, "time after a process (re)starts before its memory counts as warmed up")
	flag.IntVar(&c.instances, "instances", 10000, "instances kept alive")
	flag.IntVar(&c.services, "services", 100, "services the instances are spread over")
	flag.IntVar(&c.conns, "conns", 256, "HTTP connections the fleet's client may hold to the registrar")
	flag.DurationVar(&c.interval, "interval", 10*time.Second, "heartbeat interval of every instance")
	flag.DurationVar(&c.ttl, "ttl", 30*time.Second, "TTL of every instance")
	flag.Float64Var(&c.registerRate, "register-rate", 500, "instances started per second at the beginning")
	flag.Float64Var(&c.dnsQPS, "dns-qps", 300, "DNS queries per second (UDP; TCP after a truncated answer)")
	flag.Float64Var(&c.httpRPS, "http-rps", 50, "HTTP requests per second through the HTTP proxy")
	flag.Float64Var(&c.tcpCPS, "tcp-cps", 20, "TCP echo connections per second through the VIP proxy")
	flag.Float64Var(&c.runnerKillAt, "runner-kill-at", 0.25, "when to SIGKILL the runner, as a fraction of -duration (<0: never)")
	flag.DurationVar(&c.runnerDown, "runner-down", 5*time.Second, "how long the runner stays dead")
	flag.Float64Var(&c.etcdStopAt, "etcd-stop-at", 0.5, "when to stop one etcd member, as a fraction of -duration (<0: never)")
	flag.DurationVar(&c.etcdDown, "etcd-down", 20*time.Second, "how long the etcd member stays stopped")
	flag.StringVar(&c.etcdMember, "etcd-member", "leader", "which etcd member to stop: leader or follower")
	flag.StringVar(&c.etcdSignal, "etcd-signal", "kill", "how to stop it: kill (SIGKILL, a crash) or term (SIGTERM, graceful)")
	flag.DurationVar(&c.recovery, "recovery", 30*time.Second, "time after a fault window counted as its recovery")
	flag.BoolVar(&c.keep, "keep", false, "keep -dir (data and logs) at the end")
	flag.Parse()
	return c
}

func main() {
	c := parseFlags()
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func (c *config) check() error {
	switch {
	case c.netsel == "":
		return fmt.Errorf("-netsel is required (go build -o /tmp/netsel ./build/netsel)")
	case c.instances < 1 || c.services < 1 || c.instances%c.services != 0:
		return fmt.Errorf("-instances must be a positive multiple of -services (so that every service has as many)")
	case c.interval >= c.ttl:
		return fmt.Errorf("-interval %v must be shorter than -ttl %v", c.interval, c.ttl)
	case c.etcdMember != "leader" && c.etcdMember != "follower":
		return fmt.Errorf("-etcd-member is leader or follower, not %q", c.etcdMember)
	case c.etcdSignal != "kill" && c.etcdSignal != "term":
		return fmt.Errorf("-etcd-signal is kill or term, not %q", c.etcdSignal)
	case c.registerRate <= 0 || c.sample <= 0:
		return fmt.Errorf("-register-rate and -sample must be positive")
	}
	return nil
}

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s soak: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
