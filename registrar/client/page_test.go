package client_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestServiceFollowsPages reads a service of 1,201 instances, more than one
// page holds, with Service and Watch: each assembles every page.
func TestServiceFollowsPages(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	c := newClient(t, reg.URL)
	ctx := context.Background()
	if _, err := c.Register(ctx, client.Registration{Service: "big", ID: "a", Address: "127.0.0.1", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	const n = 1200 // and "a"
	for start := 0; start < n; start += 100 {
		var ops []clientv3.Op
		for i := start; i < start+100; i++ {
			in := &catalog.Instance{ID: fmt.Sprintf("i%04d", i), Service: "big", Address: netip.MustParseAddr("127.0.0.2"),
				Port: 9000, Weight: 1, Registered: time.Now()}
			b, err := catalog.EncodeInstance(in)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(ks.InstanceKey("big", in.ID), string(b)))
		}
		if _, err := etcd.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}

	check := func(what string, ids []string) {
		t.Helper()
		if len(ids) != n+1 {
			t.Fatalf("%s: %d instances, want %d", what, len(ids), n+1)
		}
		for i, id := range ids {
			want := "a"
			if i > 0 {
				want = fmt.Sprintf("i%04d", i-1)
			}
			if id != want {
				t.Fatalf("%s: instance %d is %s, want %s", what, i, id, want)
			}
		}
	}
	svc, err := c.Service(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range svc.Instances {
		ids = append(ids, in.ID)
	}
	check("Service", ids)
	if svc.Next != "" {
		t.Errorf("assembled answer has next %q", svc.Next)
	}

	testenv.Eventually(t, 10*time.Second, func() bool {
		v, _, err := c.Watch(ctx, "big", 0, time.Second)
		if err != nil || v == nil || len(v.Instances) != n+1 {
			return false
		}
		ids = ids[:0]
		for _, in := range v.Instances {
			ids = append(ids, in.ID)
		}
		return true
	}, "Watch never returned all %d instances", n+1)
	check("Watch", ids)
}
