package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// instance is one registration the fleet keeps alive.
type instance struct {
	service, id string
}

// fleet keeps many instances alive with registrar/client's Keepalive, one
// goroutine each, over one shared Client.
type fleet struct {
	cl    *client.Client
	st    *stats
	opts  client.KeepaliveOptions
	ttl   time.Duration
	wg    sync.WaitGroup
	first atomic.Int64 // instances registered at least once

	mu      sync.Mutex
	vips    map[string]netip.Addr     // service → VIP, from its first assignment
	ports   map[string]map[string]int // service → port name → virtual port
	dereg   atomic.Int64              // deregistrations that succeeded at the end
	deregKO atomic.Int64              // and those that failed
}

// newFleet returns a fleet whose client talks to regURL. The HTTP client
// keeps enough idle connections for conns concurrent requests: the default
// transport keeps 2 per host, which at 1,000 heartbeats/s would open and
// close a connection per request and run the loopback out of ports.
func newFleet(regURL string, st *stats, interval, ttl time.Duration, conns int) (*fleet, error) {
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		// Shorter than the registrar's 2 min IdleTimeout: with equal
		// timeouts the server closes a connection just as the client
		// reuses it, and a heartbeat (a PUT, which Go's transport does not
		// replay) fails with EOF.
		IdleConnTimeout:    90 * time.Second,
		DisableCompression: true,
	}}
	cl, err := client.New(client.Config{
		URLs:       []string{regURL},
		HTTPClient: hc,
		// Ten thousand instances log ten thousand lines per fault: the
		// soak counts events through OnEvent instead.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	return &fleet{
		cl: cl, st: st, ttl: ttl,
		// No drain when the soak ends: ten thousand instances stop at
		// once, and the soak measures heartbeats, not drains.
		opts:  client.KeepaliveOptions{Interval: interval, DrainTimeout: -1},
		vips:  make(map[string]netip.Addr),
		ports: make(map[string]map[string]int),
	}, nil
}

// keep runs Keepalive for reg until ctx ends.
func (f *fleet) keep(ctx context.Context, reg client.Registration) {
	reg.TTL = f.ttl
	var registering atomic.Bool
	registering.Store(true)
	seen := false
	opts := f.opts
	opts.OnEvent = func(e client.Event) {
		p := f.st.phase()
		switch e.Kind {
		case client.EventRegistered:
			registering.Store(false)
			if !seen {
				seen = true
				f.first.Add(1)
				f.mu.Lock()
				if _, ok := f.vips[reg.Service]; !ok {
					f.vips[reg.Service] = e.Assignment.VIP
					f.ports[reg.Service] = e.Assignment.Ports
				}
				f.mu.Unlock()
			}
		case client.EventExpired:
			registering.Store(true)
			f.st.sawExpired(reg.Service + "/" + reg.ID)
			f.st.fail(kExpired, p, reg.Service+"/"+reg.ID)
		case client.EventRetry:
			if registering.Load() {
				f.st.fail(kRegisterErr, p, e.Err.Error())
			} else {
				f.st.fail(kHeartbeatErr, p, e.Err.Error())
			}
		case client.EventDeregistered:
			if e.Err != nil {
				f.deregKO.Add(1)
			} else {
				f.dereg.Add(1)
			}
		}
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.cl.Keepalive(ctx, reg, opts); err != nil {
			f.st.fail(kKeepaliveEnd, f.st.phase(), fmt.Sprintf("%s/%s: %v", reg.Service, reg.ID, err))
		}
	}()
}

// vip returns service's VIP and named virtual ports, once known.
func (f *fleet) vip(service string) (netip.Addr, map[string]int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vips[service]
	return v, f.ports[service], ok
}

// wait waits for every Keepalive to return (after their ctx ended).
func (f *fleet) wait() { f.wg.Wait() }
