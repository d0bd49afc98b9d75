//go:build linux

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// kept is an instance kept alive by client.Keepalive, with the events it
// reported.
type kept struct {
	reg      client.Registration
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}

	mu        sync.Mutex
	counts    map[client.EventKind]int
	first     *client.Assignment
	vips      map[string]bool
	lastRetry time.Time
	lastErr   error
}

// keepalive runs c.Keepalive for reg, heartbeating every interval, until
// the test ends (or stop).
func keepalive(t *testing.T, c *client.Client, reg client.Registration, interval time.Duration) *kept {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &kept{reg: reg, interval: interval, cancel: cancel, done: make(chan struct{}),
		counts: map[client.EventKind]int{}, vips: map[string]bool{}}
	go func() {
		defer close(k.done)
		err := c.Keepalive(ctx, reg, client.KeepaliveOptions{
			Interval:          interval,
			MaxBackoff:        interval,
			DeregisterTimeout: time.Second,
			OnEvent:           k.event,
		})
		if err != nil {
			t.Errorf("Keepalive %s/%s: %v", reg.Service, reg.ID, err)
		}
	}()
	t.Cleanup(k.stop)
	return k
}

func (k *kept) stop() {
	k.cancel()
	<-k.done
}

func (k *kept) event(e client.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counts[e.Kind]++
	switch e.Kind {
	case client.EventRegistered:
		if k.first == nil {
			k.first = e.Assignment
		}
		k.vips[e.Assignment.VIP.String()] = true
	case client.EventRetry:
		k.lastRetry, k.lastErr = time.Now(), e.Err
	}
}

// registered returns the first assignment, or nil before one.
func (k *kept) registered() *client.Assignment {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.first
}

// count returns how many events of kind were reported.
func (k *kept) count(kind client.EventKind) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.counts[kind]
}

// quiet reports whether no retry was reported for d (and at least one
// event arrived).
func (k *kept) quiet(d time.Duration) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.first != nil && time.Since(k.lastRetry) > d
}

// check fails the test unless k registered exactly once, never expired and
// was only ever given one VIP.
func (k *kept) check(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.counts[client.EventRegistered]; n != 1 {
		t.Errorf("%s/%s registered %d times, want once (a re-registration means the instance was lost)", k.reg.Service, k.reg.ID, n)
	}
	if n := k.counts[client.EventExpired]; n != 0 {
		t.Errorf("%s/%s expired %d times, want never", k.reg.Service, k.reg.ID, n)
	}
	if len(k.vips) != 1 {
		t.Errorf("%s/%s was given VIPs %v, want one", k.reg.Service, k.reg.ID, k.vips)
	}
}

// answer is one raw HTTP exchange with the registrar.
type answer struct {
	status     int
	retryAfter string
	took       time.Duration
	body       string
	err        error
}

// call sends method url with body as JSON (when not nil), without any
// retry, and returns what came back.
func call(method, url string, body any) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	start := time.Now()
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start), body: string(b)}
}
