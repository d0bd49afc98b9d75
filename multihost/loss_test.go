package multihost

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// leaderOff moves etcd's leadership off host i, so that losing host i
// costs no election: etcd renews every lease on a new leader, which would
// add the election to an instance's TTL.
func (c *cluster) leaderOff(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leader, err := c.etcd.WaitLeader(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	if leader != c.etcd.Members[i] {
		return
	}
	cli := c.host(i).EtcdClient(leader.ClientURL)
	ms, err := cli.MemberList(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range ms.Members {
		if len(m.ClientURLs) > 0 && m.ClientURLs[0] != leader.ClientURL {
			if _, err := cli.MoveLeader(ctx, m.ID); err != nil {
				c.t.Fatalf("move etcd's leadership off host %d: %v", i, err)
			}
			return
		}
	}
}

// hasTarget reports whether host i's SRV answer for name has a target at
// host h's address.
func (c *cluster) hasTarget(ctx context.Context, i int, name string, h int) (bool, error) {
	targets, err := c.srvTargets(ctx, i, name)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(targets, func(tg string) bool {
		return strings.HasPrefix(tg, c.host(h).Addr().String()+":")
	}), nil
}

// TestHostLoss: host A's processes are killed and its link goes down. A's
// instance leaves host B's and C's DNS within its TTL + 1s; the proxies on
// C keep answering from B's instance; B's instance, whose service talked to
// A's registrar first, is never lost: its heartbeats go to B's registrar.
func TestHostLoss(t *testing.T) {
	const ttl = 5 * time.Second // the registrar's shortest
	c := startCluster(t, 3)
	c.leaderOff(hostA)
	a := c.startService(hostA, "echo", "a", ttl, hostA, hostB)
	c.startService(hostB, "echo", "b", ttl, hostA, hostB) // A's registrar first
	svc := c.waitInstances(hostC, "echo", "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, h := range []int{hostB, hostC} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			okA, errA := c.hasTarget(ctx, h, "_http._tcp.echo.netsel.", hostA)
			okB, errB := c.hasTarget(ctx, h, "_http._tcp.echo.netsel.", hostB)
			return errA == nil && errB == nil && okA && okB
		}, "host %d's DNS does not list both instances", h)
	}

	c.agents[hostA].Kill()
	a.Kill()
	c.etcd.Members[hostA].Kill()
	c.host(hostA).LinkDown()
	lost := time.Now()

	// Each DNS server is asked every 20 ms: A's instance must leave
	// within TTL + 1s, B's must stay in every answer.
	type watch struct {
		gone  time.Duration // since lost; 0 while A's instance is listed
		lostB error         // set when an answer lacked B's instance
	}
	watches := map[int]*watch{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, h := range []int{hostB, hostC} {
		w := &watch{}
		watches[h] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				targets, err := c.srvTargets(ctx, h, "_http._tcp.echo.netsel.")
				at := time.Since(lost)
				onHost := func(i int) bool {
					return slices.ContainsFunc(targets, func(tg string) bool {
						return strings.HasPrefix(tg, c.host(i).Addr().String()+":")
					})
				}
				switch {
				case err != nil:
					w.lostB = fmt.Errorf("%v after the loss: %w", at.Round(time.Millisecond), err)
					return
				case !onHost(hostB):
					w.lostB = fmt.Errorf("%v after the loss: answer %v", at.Round(time.Millisecond), targets)
					return
				case w.gone == 0 && !onHost(hostA):
					w.gone = at
				}
			}
		}()
	}
	// Meanwhile requests through host C's proxies keep being answered.
	var requests, failed int
	var lastErr error
	for until := lost.Add(2 * ttl); time.Now().Before(until); {
		for _, get := range []func() (string, error){
			func() (string, error) { return c.httpVia(ctx, hostC, "echo") },
			func() (string, error) { return c.httpViaVIP(ctx, hostC, port(svc, "http")) },
		} {
			requests++
			if _, err := get(); err != nil {
				failed++
				lastErr = err
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, h := range []int{hostB, hostC} {
		w := watches[h]
		if w.lostB != nil {
			t.Errorf("B's instance left host %d's DNS: %v", h, w.lostB)
		}
		switch {
		case w.gone == 0:
			t.Errorf("A's instance never left host %d's DNS", h)
		case w.gone > ttl+time.Second:
			t.Errorf("A's instance left host %d's DNS %v after the host was lost, want within TTL + 1s (%v)", h, w.gone.Round(time.Millisecond), ttl+time.Second)
		default:
			t.Logf("A's instance left host %d's DNS %v after the host was lost", h, w.gone.Round(time.Millisecond))
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests through host C's proxies failed after host A was lost; last: %v", failed, requests, lastErr)
	}
	v, _, err := c.service(ctx, hostC, "echo")
	if err != nil || len(v.Instances) != 1 || v.Instances[0].ID != "b" || v.VIP != svc.VIP {
		t.Errorf("after host A was lost: %+v %v, want instance b alone on VIP %s", v, err, svc.VIP)
	}
}

// TestPartition: host A is cut from the etcd majority (and from B and C),
// then healed. A's DNS and proxies keep answering from their last state,
// A's registrar answers 503 with Retry-After, A's instance and the VIP are
// kept; after healing, A's DNS sees a change made during the cut within a
// second of A's etcd member catching up.
func TestPartition(t *testing.T) {
	const ttl = 30 * time.Second
	c := startCluster(t, 3)
	c.startService(hostA, "echo", "a", ttl, hostA, hostB)
	c.startService(hostB, "echo", "b", ttl, hostB, hostA)
	svc := c.waitInstances(hostA, "echo", "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testenv.Eventually(t, 10*time.Second, func() bool {
		okA, errA := c.hasTarget(ctx, hostA, "_http._tcp.echo.netsel.", hostA)
		okB, errB := c.hasTarget(ctx, hostA, "_http._tcp.echo.netsel.", hostB)
		return errA == nil && errB == nil && okA && okB
	}, "host A's DNS does not list both instances")

	c.host(hostA).Partition(c.host(hostB), c.host(hostC))
	cut := time.Now()

	// A's registrar cannot reach a quorum: 503 with Retry-After.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.registrarURL(hostA)+"/v1/services/cut/instances",
		strings.NewReader(`{"port":8080,"id":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.host(hostA).HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("A's registrar during the cut: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("A's registrar during the cut: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	// A's DNS and HTTP proxy answer from their last state.
	for _, h := range []int{hostA, hostB} {
		if ok, err := c.hasTarget(ctx, hostA, "_http._tcp.echo.netsel.", h); err != nil || !ok {
			t.Errorf("host A's DNS during the cut lost the instance on host %d: %v", h, err)
		}
	}
	if body, err := c.httpVia(ctx, hostA, "echo"); err != nil || answeredBy(body) != "a" {
		t.Errorf("host A's HTTP proxy during the cut: %q %v, want an answer from a", body, err)
	}
	// The majority goes on: a service registered on B during the cut, as
	// a client does, trying again after a 503.
	registering := time.Now()
	testenv.Eventually(t, 20*time.Second, func() bool {
		status, body := c.post(ctx, hostB, "/v1/services/late/instances", `{"port":8080,"id":"l","ttl":"5m"}`)
		if status != http.StatusOK {
			t.Logf("register late on B during the cut: %d %s", status, body)
		}
		return status == http.StatusOK
	}, "B's registrar never registered during the cut")
	t.Logf("B's registrar registered %v after it was asked", time.Since(registering).Round(time.Millisecond))

	// Still from the last state at the end of the cut, which lasts until
	// every etcd client on A has noticed it (keep-alive: 7 s at most): the
	// scenario's length, not a wait for a condition.
	<-time.After(time.Until(cut.Add(8 * time.Second)))
	for _, h := range []int{hostA, hostB} {
		if ok, err := c.hasTarget(ctx, hostA, "_http._tcp.echo.netsel.", h); err != nil || !ok {
			t.Errorf("host A's DNS %v into the cut lost the instance on host %d: %v", time.Since(cut).Round(time.Millisecond), h, err)
		}
	}
	if body, err := c.httpVia(ctx, hostA, "echo"); err != nil || answeredBy(body) != "a" {
		t.Errorf("host A's HTTP proxy %v into the cut: %q %v, want an answer from a", time.Since(cut).Round(time.Millisecond), body, err)
	}

	c.net.Heal()
	healed := time.Now()
	// etcd's own recovery: A's member serves a linearizable read again.
	member := c.host(hostA).EtcdClient(c.etcd.Members[hostA].ClientURL)
	testenv.Eventually(t, 30*time.Second, func() bool {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		defer rcancel()
		_, err := member.Get(rctx, "/netsel/")
		return err == nil
	}, "A's etcd member did not recover after the heal")
	recovered := time.Now()
	var sawLate time.Time
	testenv.Eventually(t, 10*time.Second, func() bool {
		ok, err := c.hasTarget(ctx, hostA, "late.netsel.", hostB)
		if err == nil && ok {
			sawLate = time.Now()
		}
		return !sawLate.IsZero()
	}, "host A's DNS never saw the service registered during the cut")
	t.Logf("etcd recovered %v after the heal; A's DNS converged %v later", recovered.Sub(healed).Round(time.Millisecond), sawLate.Sub(recovered).Round(time.Millisecond))
	if d := sawLate.Sub(recovered); d > time.Second {
		t.Errorf("A's DNS converged %v after etcd recovered, want within 1s", d.Round(time.Millisecond))
	}
	// A's registrar serves again, with both instances kept on the VIP.
	var v *api.ServiceView
	testenv.Eventually(t, time.Until(recovered.Add(time.Second)), func() bool {
		if v, _, err = c.service(ctx, hostA, "echo"); err != nil {
			t.Logf("A's registrar after the heal: %v", err)
		}
		return err == nil
	}, "A's registrar does not serve within a second of etcd's recovery")
	if v.VIP != svc.VIP || len(v.Instances) != 2 {
		t.Errorf("after the heal: %+v; want instances a and b kept on VIP %s", v, svc.VIP)
	}
}
