package caddymodule

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
)

// metaHealth is the instance meta key that overrides the app's check for
// one instance: "none" skips it, "tcp" connects, "/path" GETs the path.
const metaHealth = "netsel.health"

// maxParallelChecks bounds the checks in flight at once.
const maxParallelChecks = 64

// healthState is an immutable set of unhealthy instances. A nil state means
// every instance is healthy.
type healthState struct {
	down map[string]bool // "service/id"
}

func (hs *healthState) healthy(service, id string) bool {
	if hs == nil || len(hs.down) == 0 {
		return true
	}
	return !hs.down[service+"/"+id]
}

// healthChecker runs active checks and publishes a new healthState when the
// set of unhealthy instances changes.
type healthChecker struct {
	cfg    HealthChecks
	logger *zap.Logger
	client *http.Client
	cur    atomic.Pointer[healthState]
	fails  map[string]int // only touched by run
	// refused, when set, says which instance addresses must not be
	// dialled, not even to check them.
	refused func(*catalog.Snapshot, netip.AddrPort) bool
}

func newHealthChecker(cfg *HealthChecks, logger *zap.Logger) *healthChecker {
	c := *cfg
	if c.Interval == 0 {
		c.Interval = caddy.Duration(defaultCheckInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = caddy.Duration(defaultCheckTimeout)
	}
	if c.Fails == 0 {
		c.Fails = 1
	}
	return &healthChecker{
		cfg:    c,
		logger: logger,
		client: &http.Client{
			Timeout:   time.Duration(c.Timeout),
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		fails: map[string]int{},
	}
}

// state returns the current health state; nil when checks are off.
func (hc *healthChecker) state() *healthState {
	if hc == nil {
		return nil
	}
	return hc.cur.Load()
}

// run checks every instance each interval until ctx ends.
func (hc *healthChecker) run(ctx context.Context, ix *catalog.Index) {
	t := time.NewTicker(time.Duration(hc.cfg.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ix.Synced():
		}
		hc.round(ctx, ix.Snapshot())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round checks every instance of snap once and publishes the result.
func (hc *healthChecker) round(ctx context.Context, snap *catalog.Snapshot) {
	type result struct {
		key string
		err error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		sem     = make(chan struct{}, maxParallelChecks)
	)
	snap.Range(func(e *catalog.Entry) bool {
		for _, in := range e.Instances() {
			kind := hc.cfg.Path
			if m, ok := in.Meta[metaHealth]; ok {
				kind = m
			}
			if kind == "none" {
				continue
			}
			key := e.Name + "/" + in.ID
			ap := hc.addr(in)
			if hc.refused != nil && hc.refused(snap, ap) {
				continue // left out of every view: nothing to check
			}
			addr := ap.String()
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				err := hc.check(ctx, addr, kind)
				mu.Lock()
				results = append(results, result{key, err})
				mu.Unlock()
			})
		}
		return true
	})
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	seen := make(map[string]bool, len(results))
	down := map[string]bool{}
	for _, r := range results {
		seen[r.key] = true
		if r.err == nil {
			if hc.fails[r.key] >= hc.cfg.Fails {
				hc.logger.Info("instance healthy again", zap.String("instance", r.key))
			}
			delete(hc.fails, r.key)
			continue
		}
		hc.fails[r.key]++
		if hc.fails[r.key] == hc.cfg.Fails {
			hc.logger.Warn("instance unhealthy; taking it out of rotation",
				zap.String("instance", r.key), zap.Error(r.err))
		}
		if hc.fails[r.key] >= hc.cfg.Fails {
			down[r.key] = true
		}
	}
	for k := range hc.fails {
		if !seen[k] {
			delete(hc.fails, k)
		}
	}
	old := hc.cur.Load()
	if old == nil && len(down) == 0 || old != nil && maps.Equal(old.down, down) {
		return
	}
	hc.cur.Store(&healthState{down: down})
}

func (hc *healthChecker) addr(in *catalog.Instance) netip.AddrPort {
	port := in.Port
	if hc.cfg.Port != "" {
		if p, ok := in.PortFor(hc.cfg.Port); ok {
			port = p
		}
	}
	return netip.AddrPortFrom(in.Address, uint16(port))
}

// check runs one check: a TCP connect, or an HTTP GET when kind is a path.
func (hc *healthChecker) check(ctx context.Context, addr, kind string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(hc.cfg.Timeout))
	defer cancel()
	if kind == "" || kind == "tcp" || kind[0] != '/' {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+kind, nil)
	if err != nil {
		return err
	}
	resp, err := hc.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: status %d", kind, resp.StatusCode)
	}
	return nil
}
