package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestServiceFlood registers services as fast as eight clients can, more
// than the runner has descriptors for VIP listeners: the runner sheds what
// it cannot hold, stays up and serves the canary, and starts again on the
// same data without crash-looping.
func TestServiceFlood(t *testing.T) {
	r := startRunner(t)
	const attempts = 1500 // > defaultNoFile: one listener each would exhaust it
	var next, ok, refused atomic.Int64
	var mu sync.Mutex
	registered := map[string]string{} // service -> id, of the 200s
	var wg sync.WaitGroup
	ctx := withTimeout(t, 60*time.Second)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > attempts {
					return
				}
				status, body := r.register(fmt.Sprintf("flood-%d", i), map[string]any{"address": "127.0.0.1", "port": 9, "ttl": "1h"})
				switch {
				case status == http.StatusOK:
					ok.Add(1)
					var res api.RegisterResponse
					json.Unmarshal(body, &res)
					mu.Lock()
					registered[fmt.Sprintf("flood-%d", i)] = res.ID
					mu.Unlock()
				case status >= 400 && status < 600:
					refused.Add(1)
				default:
					t.Errorf("registration %d: %d %s", i, status, body)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d services registered, %d refused; runner holds %d descriptors", ok.Load(), refused.Load(), r.fds())
	r.requireReserve(t)
	r.requireServing(t)
	r.restart(t)
	r.requireServing(t)
	// Every instance that got a 200 is still there (a sample, for time).
	n := 0
	for name, id := range registered {
		if n++; n > 50 {
			break
		}
		r.requireInstances(t, name, []string{id})
	}
}

// TestIdleConnectionFlood holds more idle connections to one VIP than the
// runner has descriptors: those beyond its limits are refused, and while
// they are held the runner still serves everything else.
func TestIdleConnectionFlood(t *testing.T) {
	r := startRunner(t)
	status, body := r.register("target", map[string]any{"address": "127.0.0.1", "port": int(r.canary.Addr.Port()), "id": "t1", "ttl": "1h"})
	if status != http.StatusOK {
		t.Fatalf("register: %d %s", status, body)
	}
	var res api.RegisterResponse
	json.Unmarshal(body, &res)
	vip := netip.AddrPortFrom(res.VIP, uint16(res.Port)).String()
	r.waitInstanceDNS(t, "target", "t1", netip.MustParseAddr("127.0.0.1"))

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 1500 {
		c, err := net.DialTimeout("tcp", vip, time.Second)
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	t.Logf("%d connections held; runner holds %d descriptors", len(conns), r.fds())
	r.requireReserve(t)
	r.requireServing(t)
}

// TestBlockingQueryFlood opens more blocking queries from one client than
// it may hold: those beyond the limit are 429 with Retry-After, and a
// change answers the rest.
func TestBlockingQueryFlood(t *testing.T) {
	r := startRunner(t)
	status, body := r.get("/v1/services")
	if status != http.StatusOK {
		t.Fatalf("list: %d %s", status, body)
	}
	var list api.ServiceList
	json.Unmarshal(body, &list)

	const waiters = 300
	var wg sync.WaitGroup
	var answered, limited atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := make(chan struct{}, waiters)
	for range waiters {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.registrarURL()+"/v1/services?wait=20s&index="+strconv.FormatInt(list.Index, 10), nil)
			started <- struct{}{}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				answered.Add(1)
			case http.StatusTooManyRequests:
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After")
				}
				limited.Add(1)
			default:
				t.Errorf("blocking query: %d", resp.StatusCode)
			}
		})
	}
	for range waiters {
		<-started
	}
	// Every waiter is either held (the registrar's gauge) or already refused.
	testenv.Eventually(t, 20*time.Second, func() bool {
		return r.metric("netsel_registrar_blocking_queries")+float64(limited.Load()) >= waiters
	}, "waiters never reached the registrar")
	if status, body := r.register("changed", map[string]any{"address": "127.0.0.1", "port": 9}); status != http.StatusOK {
		t.Fatalf("register: %d %s", status, body)
	}
	wg.Wait()
	t.Logf("%d answered, %d refused with 429", answered.Load(), limited.Load())
	if limited.Load() == 0 {
		t.Errorf("%d blocking queries from one client were all admitted", waiters)
	}
	if answered.Load() == 0 {
		t.Errorf("no blocking query was answered by the change")
	}
	r.requireServing(t)
}

// TestIdleRegistrarConnectionFlood opens more connections to the registrar
// than it holds open, sends nothing on them and opens another for each it
// loses: meanwhile another client still registers and heartbeats, each
// answered within 3s, well inside a TTL (sent again, as registrar/client
// does, when a connection is closed before the answer).
func TestIdleRegistrarConnectionFlood(t *testing.T) {
	r := startRunner(t)
	ctx, stop := context.WithCancel(withTimeout(t, 60*time.Second))
	const held, maxDials = 1500, 20_000
	var dials atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range held {
		wg.Go(func() {
			var d net.Dialer
			for ctx.Err() == nil && dials.Add(1) <= maxDials {
				c, err := d.DialContext(ctx, "tcp", r.addr("registrar"))
				if err != nil {
					continue
				}
				go func() { <-ctx.Done(); c.Close() }()
				c.Read(make([]byte, 1)) // returns when the registrar closes it
				c.Close()
			}
		})
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return dials.Load() >= held }, "the flood never opened its connections")

	// Each request must be answered within 3s. Like registrar/client, the
	// client sends it again when its connection is closed before an answer
	// (a new connection can lose the race against the flood).
	do := func(method, path string, body string) {
		t.Helper()
		start, tries := time.Now(), 0
		for {
			tries++
			left := 3*time.Second - time.Since(start)
			req, _ := http.NewRequest(method, r.registrarURL()+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Timeout: left}).Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %s during the flood: %d", method, path, resp.StatusCode)
				}
				t.Logf("%s %s: %v, %d tries", method, path, time.Since(start).Round(time.Millisecond), tries)
				return
			}
			if time.Since(start) > 3*time.Second-100*time.Millisecond {
				t.Fatalf("%s %s during the flood (%d connections opened): %d tries in 3s, the last: %v", method, path, dials.Load(), tries, err)
			}
			time.Sleep(50 * time.Millisecond) // a client's backoff
		}
	}
	do(http.MethodPost, "/v1/services/steady/instances", `{"address":"127.0.0.1","port":9,"id":"s1","ttl":"10s"}`)
	for range 5 {
		do(http.MethodPut, "/v1/services/steady/instances/s1/heartbeat", "")
	}
	t.Logf("%d connections opened by the flood; %v closed to make room", dials.Load(), r.metric(`netsel_registrar_limited_total{limit="connections"}`))
	stop()
	wg.Wait()
	r.requireServing(t)
}
