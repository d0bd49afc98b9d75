package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/client"
)

const (
	webService = "soak-web"
	zone       = "netsel."
)

// soak is one run: the processes, the clients and what they saw.
type soak struct {
	c       *config
	st      *stats
	members []*etcdMember
	runner  *runner
	fleet   *fleet
	etcd    *clientv3.Client
	ks      catalog.Keyspace

	start     time.Time // the fleet's start: t = 0 of every sample
	steadyAt  time.Time // every instance registered
	steadyEnd time.Time // the steady soak ended (deregistration follows)

	mu         sync.Mutex
	samples    []sample
	events     []event
	deliberate bool // a fault is under way: a dead process is expected
	runnerInc  []time.Time
	etcdInc    [][]time.Time
	expected   []instance
	final      *finalState
}

// event is a line of the run's timeline.
type event struct {
	at   time.Time
	text string
}

func (s *soak) event(format string, args ...any) {
	e := event{time.Now(), fmt.Sprintf(format, args...)}
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	logf("%s", e.text)
}

func run(ctx context.Context, c *config) error {
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "netsel-soak-")
		if err != nil {
			return err
		}
		dir = d
		if !c.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	s := &soak{c: c, st: newStats(), ks: catalog.MustKeyspace(catalog.DefaultPrefix)}

	logf("starting 3 etcd members (%s) in %s", c.etcdBin, dir)
	members, err := startEtcdCluster(ctx, c.etcdBin, dir, 3)
	if err != nil {
		return err
	}
	s.members = members
	defer killAll(members)
	s.etcdInc = make([][]time.Time, len(members))
	var urls []string
	for i, m := range members {
		urls = append(urls, m.clientURL)
		s.etcdInc[i] = []time.Time{time.Now()}
	}
	s.etcd, err = clientv3.New(clientv3.Config{Endpoints: urls, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer s.etcd.Close()

	s.runner, err = newRunner(c.netsel, filepath.Join(dir, "runner.log"), urls, c.vipCIDR)
	if err != nil {
		return err
	}
	if err := s.runner.start(); err != nil {
		return err
	}
	defer s.runner.signal(syscall.SIGTERM, 15*time.Second)
	s.runnerInc = []time.Time{time.Now()}
	if err := s.runner.waitReady(ctx, webService+"."+zone, 60*time.Second); err != nil {
		return err
	}
	logf("runner ready: registrar %s, DNS %s, HTTP proxy %s, VIPs in %s", s.runner.regURL, s.runner.dnsAddr, s.runner.httpURL, c.vipCIDR)

	if err := s.soak(ctx); err != nil {
		return err
	}
	if s.runner.running() {
		s.runner.signal(syscall.SIGTERM, 15*time.Second)
	}
	report(os.Stdout, s)
	if c.keep {
		logf("data and logs kept in %s", dir)
	} else if s.failed() {
		for _, p := range []string{"runner.log", "etcd-m0.log", "etcd-m1.log", "etcd-m2.log"} {
			if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
				os.WriteFile(filepath.Join(os.TempDir(), "netsel-soak-"+p), b, 0o644)
			}
		}
		logf("targets missed; logs copied to %s/netsel-soak-*.log", os.TempDir())
	}
	return nil
}

// soak runs the fleet, the traffic, the faults and the sampler.
func (s *soak) soak(ctx context.Context) error {
	c := s.c
	var backends []*backend
	for i := range 3 {
		b, err := startBackend(fmt.Sprintf("web-%d", i))
		if err != nil {
			return err
		}
		defer b.Close()
		backends = append(backends, b)
	}
	f, err := newFleet(s.runner.regURL, s.st, c.interval, c.ttl, c.conns)
	if err != nil {
		return err
	}
	s.fleet = f
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()

	sampleCtx, stopSampler := context.WithCancel(ctx)
	var samplerDone sync.WaitGroup
	samplerDone.Add(1)
	s.start = time.Now()
	go func() { defer samplerDone.Done(); s.sampler(sampleCtx) }()
	defer func() { stopSampler(); samplerDone.Wait() }()

	for i, b := range backends {
		id := fmt.Sprintf("web%d", i)
		s.expected = append(s.expected, instance{webService, id})
		f.keep(fleetCtx, client.Registration{
			Service: webService, ID: id, Address: "127.0.0.1", Port: b.httpPort,
			Ports: map[string]int{"http": b.httpPort, "echo": b.echoPort},
		})
	}
	services := make([]string, c.services)
	for i := range services {
		services[i] = fmt.Sprintf("soak-s%03d", i)
	}
	logf("registering %d instances over %d services at %.0f/s (heartbeat %v, TTL %v)", c.instances, c.services, c.registerRate, c.interval, c.ttl)
	every := time.Duration(float64(time.Second) / c.registerRate)
	for i := range c.instances {
		svc := services[i%c.services]
		inst := instance{svc, fmt.Sprintf("i%05d", i)}
		s.expected = append(s.expected, inst)
		f.keep(fleetCtx, client.Registration{
			Service: svc, ID: inst.id, Address: "127.0.0.1", Port: 20000 + i%c.services,
		})
		if !sleepCtx(ctx, every) {
			return ctx.Err()
		}
	}
	total := int64(len(s.expected))
	for f.first.Load() < total {
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
		if time.Since(s.start) > 10*time.Minute {
			return fmt.Errorf("only %d of %d instances registered after 10m", f.first.Load(), total)
		}
	}
	s.mu.Lock()
	s.steadyAt = time.Now()
	s.mu.Unlock()
	s.event("all %d instances registered after %v; steady soak for %v", total, s.steadyAt.Sub(s.start).Round(time.Millisecond), c.duration)

	_, ports, _ := f.vip(webService)
	vip, _, _ := f.vip(webService)
	perSvc := c.instances / c.services // check() makes the shares equal
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadWG sync.WaitGroup
	dl := newDNSLoad(s.runner.dnsAddr, zone, services, perSvc, webService, len(backends), f, s.st)
	paced(loadCtx, &loadWG, c.dnsQPS, 8, dl.query)
	paced(loadCtx, &loadWG, c.httpRPS, 4, newHTTPLoad(s.runner.httpURL, webService+"."+zone[:len(zone)-1], s.st).get)
	tl := &tcpLoad{addr: fmt.Sprintf("%s:%d", vip, ports["echo"]), st: s.st}
	paced(loadCtx, &loadWG, c.tcpCPS, 4, tl.echo)
	logf("traffic: DNS %.0f q/s at %s, HTTP %.0f req/s via %s (Host %s.netsel), TCP %.0f conn/s via VIP %s", c.dnsQPS, s.runner.dnsAddr, c.httpRPS, s.runner.httpURL, webService, c.tcpCPS, tl.addr)

	var faults sync.WaitGroup
	faults.Add(1)
	go func() { defer faults.Done(); s.faults(ctx) }()
	sleepCtx(ctx, c.duration)
	faults.Wait() // a fault under way finishes, with its recovery
	s.mu.Lock()
	s.steadyEnd = time.Now()
	s.mu.Unlock()
	stopLoad()
	loadWG.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	s.finalCheck(ctx)
	logf("stopping the fleet: every Keepalive deregisters")
	stopFleet()
	done := make(chan struct{})
	go func() { f.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		logf("fleet still deregistering after 2m")
	}
	s.afterDeregister(ctx)
	return nil
}
