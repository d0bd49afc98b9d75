package main

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestAdversarialDrainIgnoresDNSTTL: a DNS client resolves web's SRV
// answer just before a drain (TTL 5 s by default) and keeps dialling the
// instance it got until the TTL runs out, as resolvers and client
// libraries do. The drain is confirmed as soon as the CoreDNS reader
// serves the drain's revision — tens of milliseconds — and then
// deregisters: the caller stops the instance while cached answers still
// send it new connections for up to the TTL. The README promises that a
// confirmed drain means every reader sends it no new traffic.
// Expected: with a live DNS reader, a drain is not confirmed before the
// TTL of the answers that reader gave out has passed since the instance
// was marked (or the README says that DNS clients are outside the
// confirmation and for how long).
func TestAdversarialDrainIgnoresDNSTTL(t *testing.T) {
	f := startStack(t)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		b := startHTTPBackend(t, id)
		if _, err := c.Register(ctx, client.Registration{Service: "web", ID: id, Address: "127.0.0.1", Port: b.port}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool { ids := srvIDs(t, f.dns, "web"); return ids["a"] && ids["b"] },
		"DNS does not serve a and b")
	m := new(dns.Msg)
	m.SetQuestion("web.netsel.", dns.TypeSRV)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, f.dns)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("SRV web: %v %v", r, err)
	}
	ttl := time.Duration(r.Answer[0].Header().Ttl) * time.Second
	// The client above may dial a for ttl from now.
	res, err := c.Drain(ctx, "web", "a", client.DrainOptions{Timeout: 30 * time.Second, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Duration(res.Waited); res.Confirmed && waited < ttl-time.Second {
		t.Errorf("drain confirmed after %v by %d readers, while DNS answers given just before it (TTL %v) still name a", waited, res.Readers, ttl)
	}
}
