package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/netsel/netsel/catalog"
)

// member keeps this registrar's membership key (catalog.Member at
// Keyspace.MemberKey) under a lease of its own, renewed every third of its
// TTL; when the lease is lost (etcd let it expire) it puts the key again
// under a new one. At each renewal it also puts the key back when the key
// is gone (deleted by hand, or revoked by another registrar of the same
// id that stopped) or held by no lease: otherwise this member would live
// on with no key, and its share would go unchecked.
type member struct {
	cli    *clientv3.Client
	leases pb.LeaseClient
	renew  func(ctx context.Context, lease int64) (ttl int64, err error)
	log    *slog.Logger
	key    string
	value  []byte
	ttl    time.Duration
	// timeout bounds one etcd call.
	timeout time.Duration
}

// run keeps the key until ctx ends, then revokes its lease.
func (m *member) run(ctx context.Context) {
	var lease, other int64
	defer func() {
		if lease != 0 {
			m.revoke(lease)
		}
	}()
	tick := time.NewTicker(m.ttl / 3)
	defer tick.Stop()
	for {
		if lease == 0 {
			var err error
			if lease, err = m.join(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("health checks: joining the registrars failed; retrying", "key", m.key, "err", err)
			}
		} else if !m.alive(ctx, lease) {
			m.log.Warn("health checks: membership lease lost; joining again", "key", m.key, "lease", fmt.Sprintf("%x", lease))
			lease = 0
			continue
		} else {
			other = m.hold(ctx, lease, other)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// join puts the key under a new lease and returns the lease.
func (m *member) join(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	g, err := m.leases.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: int64(m.ttl / time.Second)}, grpc.WaitForReady(true))
	if err != nil {
		return 0, fmt.Errorf("grant: %w", rpctypes.Error(err))
	}
	if _, err := m.cli.Put(ctx, m.key, string(m.value), clientv3.WithLease(clientv3.LeaseID(g.ID))); err != nil {
		m.revoke(g.ID)
		return 0, fmt.Errorf("put %s: %w", m.key, err)
	}
	return g.ID, nil
}

// alive renews lease and reports false only when etcd says it is gone:
// a renewal that fails otherwise is tried again at the next tick.
func (m *member) alive(ctx context.Context, lease int64) bool {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ttl, err := m.renew(ctx, lease)
	if err != nil {
		return !errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound)
	}
	return ttl > 0
}

// hold puts the key back under lease unless a lease holds it, and returns
// the lease of another registrar that holds it (0 when none does). It
// warns when that holder changes: two live registrars share the member
// id, so both check the same share (ids must be unique). While the other
// lives it keeps the key; when it goes, the key goes and hold puts it
// back at the next renewal.
func (m *member) hold(ctx context.Context, lease, other int64) int64 {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(m.key), "=", 0)). // true too when the key is gone
		Then(clientv3.OpPut(m.key, string(m.value), clientv3.WithLease(clientv3.LeaseID(lease)))).
		Else(clientv3.OpGet(m.key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		m.log.Debug("health checks: checking the membership key failed; retrying", "key", m.key, "err", err)
		return other
	}
	if resp.Succeeded {
		m.log.Warn("health checks: membership key was gone; put it back", "key", m.key, "lease", fmt.Sprintf("%x", lease))
		return 0
	}
	var holder int64
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		holder = kvs[0].Lease
	}
	if holder == lease {
		return 0
	}
	if holder != other {
		m.log.Warn("health checks: another registrar holds this member id; member ids must be unique",
			"key", m.key, "lease", fmt.Sprintf("%x", lease), "holder", fmt.Sprintf("%x", holder))
	}
	return holder
}

// revoke ends lease, and with it the key, with a fresh short context.
func (m *member) revoke(lease int64) {
	ctx, cancel := context.WithTimeout(context.Background(), min(m.timeout, 2*time.Second))
	defer cancel()
	if _, err := m.cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		m.log.Debug("health checks: revoking the membership lease failed; it expires by itself", "err", err)
	}
}

// DefaultMemberID returns a member id for this process: the host name,
// cut to a DNS label, and a random suffix.
func DefaultMemberID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, c := range strings.ToLower(host) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0:
			b.WriteByte('-')
		}
		if b.Len() >= 48 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "registrar"
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	id := name + "-" + hex.EncodeToString(suffix[:])
	if catalog.CheckName("id", id) != nil {
		return "registrar-" + hex.EncodeToString(suffix[:])
	}
	return id
}
