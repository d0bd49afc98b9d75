package checks_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// advHanging starts a listener on loopback that accepts connections and never
// answers on them, and returns its port.
func advHanging(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAdversarialCheckStarvation: one tenant registers instances whose
// checks are as expensive as the API allows (8 checks, interval 1s,
// timeout 1s) against a backend that accepts and never answers. Every
// probe holds one of the registrar's probe slots for its whole timeout,
// and nothing bounds a service's (or a token's) share of the slots, so
// the checks of every other service slip behind them: a victim whose
// check fails at once (failures 1, interval 1s) goes critical many
// intervals late. Here the registrar has 4 slots (-checks-max-probes;
// 512 by default, which 64 such instances fill) and the hostile tenant
// needs 32.
// Expected: a service's checks are not delayed past a few of their own
// intervals by another service's checks (a per-service or per-token share
// of the probe slots, or a probe budget refused at registration).
func TestAdversarialCheckStarvation(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, checked("r1", 5*time.Second, nil),
		func(c *registrar.Config) { c.Checks.MaxConcurrent = 4 })
	port := advHanging(t)
	var checks []string
	for range 8 {
		checks = append(checks, `{"type":"http","interval":"1s","timeout":"1s","failures":100}`)
	}
	for i := range 4 {
		body := fmt.Sprintf(`{"id":"h%d","address":"127.0.0.1","port":%d,"ttl":"60s","checks":[%s]}`, i, port, strings.Join(checks, ","))
		if err := post(reg.URL+"/v1/services/hostile/instances", body); err != nil {
			t.Fatal(err)
		}
	}
	// A port nothing listens on: the victim's check fails at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	start := time.Now()
	register(t, reg.URL, "victim", api.RegisterRequest{ID: "v", Address: "127.0.0.1", Port: closed,
		Checks: []api.Check{{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Failures: 1}}})
	deadline := 4 * time.Second
	for time.Since(start) < deadline {
		e, ok := reg.Registrar.Index().Snapshot().Service("victim")
		if ok {
			if in, ok := e.Instance("v"); ok && in.State() == catalog.StateCritical {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("the victim's failing check (interval 1s, failures 1) was not critical within %s: another service's hanging checks hold every probe slot", deadline)
}
