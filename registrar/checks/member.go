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
// under a new one.
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
	var lease int64
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
