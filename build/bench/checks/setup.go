package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/registrar/checks"
)

// longTTL is the TTL of every instance: longer than the run, so that no
// heartbeat is needed and no lease expires.
const longTTL = 30 * time.Minute

// checkSpec is the check every checked instance declares, with -interval.
const checkSpec = `[{"type":"http","path":"/healthz","interval":"%s"}]`

// bench holds one embedded etcd, its raw client, the backends' child
// process and the pair of registrars running now: both with checks off, or
// both checking.
type bench struct {
	o        options
	dir      string
	etcd     *embedetcd.Server
	raw      *clientv3.Client
	be       *backends
	hc       *http.Client
	pair     [2]*regServer
	checking bool
	// changes adds up the state changes of the checking pairs stopped.
	changes int64
}

func setup(ctx context.Context, o options) (*bench, error) {
	b := &bench{o: o, hc: newHTTPClient(o.clients)}
	var err error
	if b.dir, err = os.MkdirTemp(o.dataParent, "netsel-checkbench-"); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "starting embedded etcd in %s\n", b.dir)
	b.etcd, err = embedetcd.Start(ctx, embedetcd.Config{Dir: b.dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		os.RemoveAll(b.dir)
		return nil, err
	}
	if b.raw, err = clientv3.New(clientv3.Config{Endpoints: []string{b.etcd.ClientURL()}, DialTimeout: 5 * time.Second}); err != nil {
		b.close()
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	if b.be, err = startBackends(ctx, o.backend); err != nil {
		b.close()
		return nil, err
	}
	if err := b.startPair(ctx, false); err != nil {
		b.close()
		return nil, err
	}
	if err := b.prepare(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// prepare creates the services the registration loads add instances to
// (so that VIP allocation is not measured) and registers the checked
// instances, through both registrars, and waits until both indexes show
// them.
func (b *bench) prepare(ctx context.Context) error {
	o := b.o
	fmt.Fprintf(os.Stderr, "registering %d instances with checks, on %d backend ports\n", o.instances, len(b.be.shared)+len(b.be.flip))
	start := time.Now()
	err := loadgen.Parallel(o.clients, o.services, func(i int) error {
		return expect(ctx, b.hc, http.MethodPost, fmt.Sprintf("%s/v1/services/reg-%d/instances", b.pair[0].URL, i),
			fmt.Sprintf(`{"id":"seed","address":"127.0.0.1","port":8080,"ttl":"%s"}`, longTTL))
	})
	if err != nil {
		return err
	}
	spec := fmt.Sprintf(checkSpec, o.interval)
	err = loadgen.Parallel(o.clients, o.instances, func(i int) error {
		ap := b.be.addr(i)
		return expect(ctx, b.hc, http.MethodPost, fmt.Sprintf("%s/v1/services/chk-%d/instances", b.pair[i%2].URL, i%o.services),
			fmt.Sprintf(`{"id":"c%d","address":"%s","port":%d,"ttl":"%s","checks":%s}`, i, ap.Addr(), ap.Port(), longTTL, spec))
	})
	if err != nil {
		return err
	}
	want := o.services + o.instances
	for _, r := range b.pair {
		err := waitFor(ctx, 30*time.Second, "the indexes to show the instances", func() bool {
			_, n := r.Reg.Index().Snapshot().Len()
			return n >= want
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "  took %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// startPair starts two registrars, with checks on or off; with checks on
// it waits until they share every checked instance.
func (b *bench) startPair(ctx context.Context, checking bool) error {
	for i := range b.pair {
		r, err := startRegistrar(ctx, b.etcd.ClientURL(), checks.Options{Disabled: !checking, MemberID: fmt.Sprintf("bench-%d", i+1)})
		if err != nil {
			b.stopPair()
			return err
		}
		b.pair[i] = r
	}
	b.checking = checking
	if !checking {
		return nil
	}
	// Each owns its share once both see both members: together they own
	// every checked instance exactly once.
	return waitFor(ctx, 30*time.Second, "the registrars to share the checks", func() bool {
		s0, s1 := b.pair[0].stats(), b.pair[1].stats()
		return s0.Owned > 0 && s1.Owned > 0 && s0.Owned+s1.Owned == int64(b.o.instances)
	})
}

// stopPair stops the registrars running.
func (b *bench) stopPair() {
	for i, r := range b.pair {
		if r != nil {
			b.changes += r.stats().Changes
			r.Stop()
			b.pair[i] = nil
		}
	}
}

// usePair makes the running pair check (or not), restarting it if needed.
func (b *bench) usePair(ctx context.Context, checking bool) error {
	if b.pair[0] != nil && b.checking == checking {
		return nil
	}
	fmt.Fprintf(os.Stderr, "restarting the registrars with checks %s\n", onOff(checking))
	b.stopPair()
	return b.startPair(ctx, checking)
}

// stats returns the checker counters of both registrars of the pair.
func (b *bench) stats() [2]checks.Stats {
	return [2]checks.Stats{b.pair[0].stats(), b.pair[1].stats()}
}

func (b *bench) close() {
	b.stopPair()
	if b.be != nil {
		b.be.stop()
	}
	if b.raw != nil {
		b.raw.Close()
	}
	if b.etcd != nil {
		b.etcd.Close()
	}
	os.RemoveAll(b.dir)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
