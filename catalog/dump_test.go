package catalog_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestRestoreTxnGuards: the restore transaction applies only to the
// keyspace it was built for — an empty one, or the one a dump read — and
// writes nothing once a record or a reservation appeared or changed.
func TestRestoreTxnGuards(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	ks := catalog.MustKeyspace("/guard/")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := func(name, vip string) *catalog.Service {
		return &catalog.Service{Name: name, VIP: netip.MustParseAddr(vip), Ports: []catalog.Port{{Name: "default", Port: 80, Protocol: "tcp"}}}
	}
	commit := func(cmps []clientv3.Cmp, ops []clientv3.Op) bool {
		t.Helper()
		resp, err := etcd.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	count := func() int64 {
		t.Helper()
		resp, err := etcd.Client.Get(ctx, ks.Prefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}

	// A lone VIP reservation makes the keyspace not empty.
	if _, err := etcd.Client.Put(ctx, ks.VIPKey(netip.MustParseAddr("10.0.0.9")), "gone"); err != nil {
		t.Fatal(err)
	}
	cmps, ops, err := ks.RestoreTxn([]*catalog.Service{svc("web", "10.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if commit(cmps, ops) || count() != 1 {
		t.Fatalf("a restore into a keyspace holding a VIP reservation applied (%d keys)", count())
	}

	// A dump, then a change: the forced restore built on the dump fails.
	if _, err := etcd.Client.Put(ctx, ks.ServiceKey("web"), `{"name":"web","vip":"10.0.0.2","ports":[{"name":"default","port":80,"protocol":"tcp"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Put(ctx, ks.VIPKey(netip.MustParseAddr("10.0.0.2")), "web"); err != nil {
		t.Fatal(err)
	}
	d, err := catalog.ReadDump(ctx, etcd.Client, ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Services) != 1 || d.Services[0].VIP != netip.MustParseAddr("10.0.0.2") || len(d.Reservations) != 2 {
		t.Fatalf("dump = %+v", d)
	}
	cmps, ops, err = ks.RestoreTxn([]*catalog.Service{svc("web", "10.0.0.1")}, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Put(ctx, ks.VIPKey(netip.MustParseAddr("10.0.0.3")), "api"); err != nil {
		t.Fatal(err)
	}
	if commit(cmps, ops) {
		t.Fatal("a forced restore applied over a reservation made after its dump")
	}
	// Built on a fresh dump, it applies: web moves to 10.0.0.1 and its
	// old reservation goes; the others stay.
	if d, err = catalog.ReadDump(ctx, etcd.Client, ks, nil); err != nil {
		t.Fatal(err)
	}
	cmps, ops, _ = ks.RestoreTxn([]*catalog.Service{svc("web", "10.0.0.1")}, d)
	if !commit(cmps, ops) {
		t.Fatal("a forced restore on a fresh dump did not apply")
	}
	if d, err = catalog.ReadDump(ctx, etcd.Client, ks, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.0.0.1": "web", "10.0.0.3": "api", "10.0.0.9": "gone"}
	if len(d.Reservations) != len(want) {
		t.Errorf("reservations %v, want %v", d.Reservations, want)
	}
	for ip, name := range want {
		if d.Reservations[netip.MustParseAddr(ip)] != name {
			t.Errorf("reservations %v, want %v", d.Reservations, want)
		}
	}
}
