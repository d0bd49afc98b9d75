package client_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestRegisterLostAnswerFailover plays the worst moment for a registration
// without an id: the first registrar commits it, its answer is lost on the
// way back, and the client fails over to the second registrar. Register
// picks the id before the first attempt, so the second attempt replaces the
// first instance instead of adding another.
func TestRegisterLostAnswerFailover(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	r1 := testenv.StartRegistrar(t, etcd.URL)
	r2 := testenv.StartRegistrar(t, etcd.URL)
	loser := testenv.StartAnswerLoser(t, r1.Addr)
	c := newClient(t, "http://"+loser.Addr(), r2.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a, err := c.Register(ctx, client.Registration{Service: "web", Address: "127.0.0.1", Port: 8080})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if loser.Lost() != 1 {
		t.Fatalf("%d answers lost, want the first registrar's one", loser.Lost())
	}
	ids := instanceIDs(t, etcd, "web")
	if len(ids) != 1 || ids[0] != a.ID {
		t.Errorf("instances of web in etcd: %v, want exactly the one registered, %s", ids, a.ID)
	}
}

// TestKeepaliveLostAnswerFailover is the same through Keepalive: one
// instance, kept alive by the second registrar.
func TestKeepaliveLostAnswerFailover(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	r1 := testenv.StartRegistrar(t, etcd.URL)
	r2 := testenv.StartRegistrar(t, etcd.URL)
	loser := testenv.StartAnswerLoser(t, r1.Addr)
	c := newClient(t, "http://"+loser.Addr(), r2.URL)
	ev, stop := startKeepalive(t, c, client.Registration{Service: "web", Address: "127.0.0.1", Port: 8080, TTL: 5 * time.Second})
	testenv.Eventually(t, 10*time.Second, func() bool { return heartbeats(t, r2.URL) >= 2 }, "no heartbeats at the second registrar")
	a := ev.assignments()[0]
	if ids := instanceIDs(t, etcd, "web"); len(ids) != 1 || ids[0] != a.ID {
		t.Errorf("instances of web in etcd: %v, want exactly the one registered, %s", ids, a.ID)
	}
	if err := stop(); err != nil {
		t.Fatalf("Keepalive: %v", err)
	}
}

// instanceIDs returns the ids of svc's instances in etcd.
func instanceIDs(t *testing.T, etcd *testenv.Etcd, svc string) []string {
	t.Helper()
	prefix := ks.InstanceKey(svc, "")
	resp, err := etcd.Client.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, string(kv.Key[len(prefix):]))
	}
	return ids
}
