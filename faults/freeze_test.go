//go:build linux

package faults

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// Times of TestEtcdFrozen: the instance's TTL, its client's heartbeat
// interval (TTL/3) and how long etcd is frozen (3 × TTL).
const (
	freezeTTL      = 5 * time.Second
	freezeInterval = freezeTTL / 3
	freezeFor      = 3 * freezeTTL
)

// TestEtcdFrozen freezes an etcd process (SIGSTOP) for three times an
// instance's TTL while its client heartbeats every TTL/3, as a client
// should. etcd's clock runs on while it is frozen, so at resume it expires
// the lease at once; the registrar must put the instance back under a new
// lease, with the same id and VIP, and answer the heartbeats 200, never 404.
// DNS and the registrar's index serve the instance again after resume.
func TestEtcdFrozen(t *testing.T) {
	etcd := testenv.StartEtcdProcess(t)
	cli := etcd.Client()
	n := startStack(t, vipRange(), []string{etcd.URL()}, withRegistrar|withDNS)
	regURL, dnsAddr := n.RegistrarURL, n.DNSAddr

	a := call("POST", regURL+"/v1/services/frozen/instances", api.RegisterRequest{
		ID: "f-0", Address: "127.0.0.1", Port: 4242, TTL: api.Duration(freezeTTL), Meta: map[string]string{"k": "v"},
	})
	if a.status != http.StatusOK {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	var first api.RegisterResponse
	if err := json.Unmarshal([]byte(a.body), &first); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "frozen")
		return err == nil && sameSet(got, targets("frozen", "f-0"))
	}, "DNS never served the instance")

	// The client heartbeats every TTL/3 throughout.
	type beat struct {
		at     time.Time
		status int
		body   string
	}
	var (
		mu    sync.Mutex
		beats []beat
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		tick := time.NewTicker(freezeInterval)
		defer tick.Stop()
		for {
			start := time.Now()
			a := call("PUT", regURL+"/v1/services/frozen/instances/f-0/heartbeat", nil)
			mu.Lock()
			beats = append(beats, beat{start, a.status, a.body})
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// DNS is polled throughout: the longest stretch it misses the instance
	// is how long the instance was lost.
	var (
		gapMu              sync.Mutex
		gapFrom            time.Time
		longestGap         time.Duration
		dnsStop, dnsPolled = make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(dnsPolled)
		for {
			select {
			case <-dnsStop:
				return
			default:
			}
			got, err := srvTargets(dnsAddr, "frozen")
			now := time.Now()
			gapMu.Lock()
			if err == nil && sameSet(got, targets("frozen", "f-0")) {
				if !gapFrom.IsZero() {
					longestGap = max(longestGap, now.Sub(gapFrom))
					gapFrom = time.Time{}
				}
			} else if gapFrom.IsZero() {
				gapFrom = now
			}
			gapMu.Unlock()
			time.Sleep(5 * time.Millisecond) // the polling interval
		}
	}()

	m := etcd.Members[0]
	m.Pause()
	paused := time.Now()
	// The freeze lasts freezeFor: the fault's length, not a wait for a
	// condition.
	time.Sleep(freezeFor)
	m.Resume()
	resumed := time.Now()
	t.Logf("etcd frozen for %v", resumed.Sub(paused))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The instance is in etcd again, on a live lease, and the VIP is the
	// one it had.
	testenv.Eventually(t, 15*time.Second, func() bool {
		resp, err := cli.Get(ctx, ks.InstanceKey("frozen", "f-0"))
		return err == nil && len(resp.Kvs) == 1 && leaseTTL(t, cli, resp.Kvs[0].Lease) > 0
	}, "the instance is not in etcd after resume")
	testenv.Eventually(t, 15*time.Second, func() bool {
		a := call("GET", regURL+"/v1/services/frozen", nil)
		var s api.ServiceView
		return a.status == http.StatusOK && json.Unmarshal([]byte(a.body), &s) == nil &&
			s.VIP == first.VIP && len(s.Instances) == 1 && s.Instances[0].Meta["k"] == "v"
	}, "the service does not list the instance with its VIP %v after resume", first.VIP)
	testenv.Eventually(t, 15*time.Second, func() bool {
		got, err := srvTargets(dnsAddr, "frozen")
		return err == nil && sameSet(got, targets("frozen", "f-0"))
	}, "DNS does not serve the instance after resume")
	close(dnsStop)
	<-dnsPolled
	gapMu.Lock()
	t.Logf("DNS missed the instance for at most %v around the resume", longestGap.Round(time.Millisecond))
	gapMu.Unlock()
	testenv.Eventually(t, 15*time.Second, func() bool {
		vip, err := vipOf(dnsAddr, "frozen")
		return err == nil && vip == first.VIP
	}, "DNS does not answer the VIP %v after resume", first.VIP)
	testenv.Eventually(t, 15*time.Second, func() bool {
		a := call("GET", regURL+"/v1/services/frozen?stale", nil)
		return a.status == http.StatusOK && strings.Contains(a.body, `"f-0"`)
	}, "the registrar's index does not list the instance after resume")

	// Let the client heartbeat a few more times after resume, then judge
	// every heartbeat: none is a 404.
	testenv.Eventually(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, b := range beats {
			if b.at.After(resumed) && b.status == http.StatusOK {
				n++
			}
		}
		return n >= 3
	}, "fewer than 3 heartbeats answered 200 after resume")
	mu.Lock()
	defer mu.Unlock()
	for _, b := range beats {
		if b.status == http.StatusNotFound {
			t.Errorf("heartbeat %v after resume answered 404 %s", b.at.Sub(resumed).Round(time.Millisecond), b.body)
		}
	}
	t.Logf("%d heartbeats", len(beats))
}
