package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/build/bench/internal/loadgen"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
)

// longTTL is the TTL of everything the measured cases create: longer than
// a whole run, so that no lease expires (and is revoked) during the runs.
const longTTL = 30 * time.Minute

// bench holds what the cases share: one embedded etcd, a raw client, one
// registrar, one HTTP client and the pre-made leases and instances.
type bench struct {
	o      options
	dir    string
	etcd   *embedetcd.Server
	raw    *clientv3.Client
	reg    *regServer
	hc     *http.Client
	value  string             // a stored instance value, for the raw puts
	leases []clientv3.LeaseID // for (c)
}

func setup(ctx context.Context, o options) (*bench, error) {
	b := &bench{o: o, hc: newHTTPClient(o.clients, o.h2c)}
	var err error
	if b.dir, err = os.MkdirTemp(o.dataParent, "netsel-regbench-"); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "starting embedded etcd in %s\n", b.dir)
	b.etcd, err = embedetcd.Start(ctx, embedetcd.Config{Dir: b.dir, ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		os.RemoveAll(b.dir)
		return nil, err
	}
	if b.raw, err = newEtcdClient(b.etcd.ClientURL()); err != nil {
		b.close()
		return nil, err
	}
	if b.reg, err = startRegistrar(ctx, b.etcd.ClientURL(), b.o.h2c); err != nil {
		b.close()
		return nil, err
	}
	val, err := catalog.EncodeInstance(&catalog.Instance{
		ID: "r0w0n0", Service: "svc-0", Address: netip.MustParseAddr("127.0.0.1"), Port: 8080,
		Weight: 1, Registered: time.Now(),
	})
	if err != nil {
		b.close()
		return nil, err
	}
	b.value = string(val)
	if err := b.prepare(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// prepare grants the raw leases of (c), creates the services of (b) so that
// VIP allocation is not measured, and registers the instances of (d).
func (b *bench) prepare(ctx context.Context) error {
	fmt.Fprintf(os.Stderr, "preparing %d leases, %d services and %d instances\n", b.o.instances, b.o.services, b.o.instances)
	b.leases = make([]clientv3.LeaseID, b.o.instances)
	err := loadgen.Parallel(b.o.clients, b.o.instances, func(i int) error {
		l, err := b.raw.Grant(ctx, int64(longTTL/time.Second))
		if err != nil {
			return fmt.Errorf("grant: %w", err)
		}
		b.leases[i] = l.ID
		return nil
	})
	if err != nil {
		return err
	}
	err = loadgen.Parallel(b.o.clients, b.o.services, func(i int) error {
		return expect(ctx, b.hc, http.MethodPost, fmt.Sprintf("%s/v1/services/svc-%d/instances", b.reg.URL, i),
			fmt.Sprintf(`{"id":"seed","address":"127.0.0.1","port":8080,"ttl":"%s"}`, longTTL))
	})
	if err != nil {
		return err
	}
	err = loadgen.Parallel(b.o.clients, b.o.instances, func(i int) error {
		return expect(ctx, b.hc, http.MethodPost, fmt.Sprintf("%s/v1/services/hb-%d/instances", b.reg.URL, i%b.o.services),
			fmt.Sprintf(`{"id":"h%d","address":"127.0.0.1","port":8080,"ttl":"%s"}`, i, longTTL))
	})
	if err != nil {
		return err
	}
	// Heartbeats should find their leases in the index, as in steady state.
	want := b.o.services + b.o.instances
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, n := b.reg.Reg.Index().Snapshot().Len(); n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the registrar's index never saw the %d prepared instances: %w", want, errTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bench) close() {
	if b.reg != nil {
		b.reg.Stop()
	}
	if b.raw != nil {
		b.raw.Close()
	}
	if b.etcd != nil {
		b.etcd.Close()
	}
	os.RemoveAll(b.dir)
}

// share returns the n-th item, cycling, of client w's share of count items:
// w, w+clients, w+2·clients, ...
func (b *bench) share(w, n, count int) int {
	per := (count - w + b.o.clients - 1) / b.o.clients
	return w + (n%per)*b.o.clients
}

// rawGrantPut is (a): one lease and one put under it per op, as a
// registration needs at least.
func (b *bench) rawGrantPut(run int) loadgen.Op {
	return func(ctx context.Context, w, n int) error {
		l, err := b.raw.Grant(ctx, int64(longTTL/time.Second))
		if err != nil {
			return err
		}
		_, err = b.raw.Put(ctx, fmt.Sprintf("/bench/raw/r%dw%dn%d", run, w, n), b.value, clientv3.WithLease(l.ID))
		return err
	}
}

// register is (b): a new instance per op, of one of the existing services.
func (b *bench) register(run int) loadgen.Op {
	return func(ctx context.Context, w, n int) error {
		return expect(ctx, b.hc, http.MethodPost,
			fmt.Sprintf("%s/v1/services/svc-%d/instances", b.reg.URL, (w*7+n)%b.o.services),
			fmt.Sprintf(`{"id":"r%dw%dn%d","address":"127.0.0.1","port":8080,"ttl":"%s"}`, run, w, n, longTTL))
	}
}

// rawKeepAlive is (c): KeepAliveOnce of an existing lease per op.
func (b *bench) rawKeepAlive(int) loadgen.Op {
	return func(ctx context.Context, w, n int) error {
		resp, err := b.raw.KeepAliveOnce(ctx, b.leases[b.share(w, n, len(b.leases))])
		if err == nil && resp.TTL <= 0 {
			err = fmt.Errorf("lease gone")
		}
		return err
	}
}

// heartbeat is (d): a heartbeat of an existing instance per op.
func (b *bench) heartbeat(int) loadgen.Op {
	return func(ctx context.Context, w, n int) error {
		i := b.share(w, n, b.o.instances)
		return expect(ctx, b.hc, http.MethodPut,
			fmt.Sprintf("%s/v1/services/hb-%d/instances/h%d/heartbeat", b.reg.URL, i%b.o.services, i), "")
	}
}

// heartbeatMetrics reads the registrar's keep-alive requests sent to etcd
// and its heartbeats answered by a renewal of their own and from the cache.
func (b *bench) heartbeatMetrics(ctx context.Context) ([3]float64, error) {
	var m [3]float64
	for i, name := range []string{
		"netsel_registrar_lease_keepalive_requests_total",
		`netsel_registrar_heartbeats_total{result="ok"}`,
		`netsel_registrar_heartbeats_total{result="cached"}`,
	} {
		v, err := metric(ctx, b.hc, b.reg.URL, name)
		if err != nil {
			return m, err
		}
		m[i] = v
	}
	return m, nil
}

// probeRun is the two expiry probes running beside one heartbeat load.
type probeRun struct {
	wg          sync.WaitGroup
	alive, died expiry
	errAlive    error
	errDied     error
	on          bool
}

// startProbes starts, beside the heartbeat load of run r, one probe through
// the loaded registrar and one through a second registrar that is stopped
// right after the last heartbeat.
func (b *bench) startProbes(ctx context.Context, r int) *probeRun {
	p := &probeRun{on: b.o.sample > 0}
	if !p.on {
		return p
	}
	p.wg.Go(func() {
		p.alive, p.errAlive = probeExpiry(ctx, b.hc, b.raw, b.reg.URL, fmt.Sprintf("exp-%d", r), b.o.sample, b.o.probeTTL, nil)
	})
	p.wg.Go(func() {
		second, err := startRegistrar(ctx, b.etcd.ClientURL(), b.o.h2c)
		if err != nil {
			p.errDied = err
			return
		}
		stopped := false
		defer func() {
			if !stopped {
				second.Stop()
			}
		}()
		p.died, p.errDied = probeExpiry(ctx, b.hc, b.raw, second.URL, fmt.Sprintf("died-%d", r), b.o.sample, b.o.probeTTL, func() {
			second.Stop()
			stopped = true
		})
	})
	return p
}

// wait waits for the probes and returns what they saw.
func (p *probeRun) wait() (alive, died []expiry, err error) {
	if !p.on {
		return nil, nil, nil
	}
	p.wg.Wait()
	if p.errAlive != nil {
		return nil, nil, fmt.Errorf("expiry probe: %w", p.errAlive)
	}
	if p.errDied != nil {
		return nil, nil, fmt.Errorf("expiry probe (registrar died): %w", p.errDied)
	}
	return []expiry{p.alive}, []expiry{p.died}, nil
}
