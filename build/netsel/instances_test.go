package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestInstancesAllPages checks that `netsel instances` prints every
// instance of a service bigger than a page of the registrar's answer.
func TestInstancesAllPages(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	ctx := context.Background()
	svc, _ := catalog.EncodeService(&catalog.Service{Name: "big", VIP: netip.MustParseAddr("127.77.0.9"),
		Ports: []catalog.Port{{Name: "default", Port: 80, Protocol: "tcp"}}})
	ops := []clientv3.Op{clientv3.OpPut(ks.ServiceKey("big"), string(svc))}
	const n = 1100
	for i := range n {
		in, _ := catalog.EncodeInstance(&catalog.Instance{ID: fmt.Sprintf("i%04d", i), Service: "big",
			Address: netip.MustParseAddr("127.0.0.2"), Port: 9000, Weight: 1, Registered: time.Now()})
		ops = append(ops, clientv3.OpPut(ks.InstanceKey("big", fmt.Sprintf("i%04d", i)), string(in)))
		if len(ops) == 100 || i == n-1 {
			if _, err := etcd.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"instances", "-registrar", reg.URL, "big"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := strings.Count(stdout.String(), " 127.0.0.2:9000 "); got != n {
		t.Errorf("printed %d instances, want %d", got, n)
	}
}
