package registrar_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestLostCommitReplacedThenReplaced re-registers an instance with a
// transaction that etcd applies but whose answer is lost (the registrar
// cannot read back either, so the outcome is unknown), then registers it
// once more before the registrar's background read: the lease the lost
// commit replaced holds nothing and must be revoked, although the last
// registration replaced only the lost commit's lease.
func TestLostCommitReplacedThenReplaced(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	lost := &lostAnswers{}
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.EtcdTimeout = 500 * time.Millisecond
		lost.KV = c.Client.KV
		c.Client.KV = lost
	})
	req := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80, TTL: api.Duration(time.Minute)}
	first := register(t, reg.URL, "web", req)

	lost.on.Store(true)
	r := do(t, "POST", reg.URL+"/v1/services/web/instances", req)
	lost.on.Store(false)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("registration whose answer was lost: %d %s, want 503", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	key := ks.InstanceKey("web", "a")
	got, err := etcd.Client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) == 0 || got.Kvs[0].Lease == first.Lease {
		t.Fatalf("the lost transaction was not applied: %v", got.Kvs)
	}

	last := register(t, reg.URL, "web", req)
	testenv.Eventually(t, 25*time.Second, func() bool {
		ttl, err := etcd.Client.TimeToLive(ctx, clientv3.LeaseID(first.Lease))
		return err == nil && ttl.TTL == -1
	}, "lease %x, replaced by a commit whose answer was lost, is not revoked", first.Lease)

	got, err = etcd.Client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) == 0 || got.Kvs[0].Lease != last.Lease {
		t.Fatalf("instance a lost its last registration (lease %x): %v", last.Lease, got.Kvs)
	}
}

// lostAnswers passes everything to etcd, but while on it reports the answer
// of every transaction lost after etcd applied it, and fails reads: a
// connection cut just after etcd applied a write.
type lostAnswers struct {
	clientv3.KV
	on atomic.Bool
}

func (l *lostAnswers) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if l.on.Load() {
		return nil, status.Error(codes.Unavailable, "answer lost (test)")
	}
	return l.KV.Get(ctx, key, opts...)
}

func (l *lostAnswers) Txn(ctx context.Context) clientv3.Txn {
	return &lostTxn{Txn: l.KV.Txn(ctx), l: l}
}

type lostTxn struct {
	clientv3.Txn
	l *lostAnswers
}

func (t *lostTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *lostTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *lostTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }

func (t *lostTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if t.l.on.Load() {
		return nil, status.Error(codes.Unavailable, "answer lost (test)")
	}
	return resp, err
}
