package checks_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestAdversarialDuplicateMemberID: two registrars are started with the
// same -member-id (a copied unit file, a clumsy operator). Both put the
// one membership key, each under its own lease; the second put wins. When
// the second stops cleanly it revokes its lease and the key goes; the
// first still renews its own lease, which holds no key, so it never puts
// the key back (member.alive checks the lease, not the key): no live
// member is left and nothing is checked any more — a failing instance
// stays passing, silently. The same happens when anyone deletes a
// registrar's membership key.
// Expected: a registrar whose membership key is gone (or not its own)
// puts it back within its TTL, or refuses to start beside a live
// registrar of the same id; here, the first registrar keeps checking.
func TestAdversarialDuplicateMemberID(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	a := testenv.StartRegistrar(t, etcd.URL, checked("same", 2*time.Second, nil))
	b := testenv.StartRegistrar(t, etcd.URL, checked("same", 2*time.Second, nil))
	// Both have put the key: b's put, the later, holds it.
	testenv.Eventually(t, 5*time.Second, func() bool {
		resp, err := etcd.Client.Get(context.Background(), ks.MemberKey("same"))
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Version >= 2
	}, "the second registrar never put its membership key")
	b.Stop()
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(a.Registrar.Index().Snapshot().Members()) == 0
	}, "the membership key outlived the second registrar")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	register(t, a.URL, "web", api.RegisterRequest{ID: "x", Address: "127.0.0.1", Port: closed,
		Checks: []api.Check{{Type: "tcp", Interval: api.Duration(time.Second), Timeout: api.Duration(500 * time.Millisecond), Failures: 1}}})
	// Within the member TTL (2s) and a few intervals.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if e, ok := a.Registrar.Index().Snapshot().Service("web"); ok {
			if in, ok := e.Instance("x"); ok && in.State() == catalog.StateCritical {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("an instance whose check fails was not critical within 6s; members %d, registrar a owns %d: nobody checks",
		len(a.Registrar.Index().Snapshot().Members()), a.Registrar.Checker().Stats().Owned)
}
