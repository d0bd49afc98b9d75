//go:build linux

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/netsel/netsel/internal/etcdproc"
)

// Ports of the etcd members that StartEtcdOnHosts runs, on each host's
// address.
const (
	HostEtcdClientPort = 2379
	HostEtcdPeerPort   = 2380
)

// StartEtcdOnHosts starts an etcd cluster of EtcdBinary with one member on
// each of hosts (three for a cluster that outlives one host), listening on
// the host's address at HostEtcdClientPort and HostEtcdPeerPort, and waits
// until it has a leader. Its members stop, kill, pause and start as those
// of StartEtcdCluster. It skips the test when the binary is missing.
func StartEtcdOnHosts(t testing.TB, hosts []*Host) *EtcdCluster {
	t.Helper()
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Skipf("%s not found (install Debian's etcd-server package to run this test): %v", EtcdBinary, err)
	}
	if len(hosts) < 1 {
		t.Fatalf("StartEtcdOnHosts: no hosts")
	}
	specs := make([]etcdproc.Member, len(hosts))
	for i, h := range hosts {
		specs[i] = etcdproc.Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://%s", netip.AddrPortFrom(h.addr, HostEtcdClientPort)),
			PeerURL:   fmt.Sprintf("http://%s", netip.AddrPortFrom(h.addr, HostEtcdPeerPort)),
			Dir:       filepath.Join(t.TempDir(), "etcd"),
		}
	}
	token := "netsel-test-" + hosts[0].net.id
	c := &EtcdCluster{t: t}
	for i, spec := range specs {
		c.Members = append(c.Members, &EtcdMember{
			Name:      spec.Name,
			ClientURL: spec.ClientURL,
			PeerURL:   spec.PeerURL,
			Dir:       spec.Dir,
			Host:      hosts[i],
			t:         t,
			args:      etcdproc.Args(spec, specs, token),
			log:       &tailBuffer{max: 64 << 10},
		})
	}
	c.startAll()
	return c
}

// onHosts reports whether c's members run on test hosts rather than on
// loopback.
func (c *EtcdCluster) onHosts() bool { return c.Members[0].Host != nil }

// status asks m alone for its status, within a second, from m's own host
// when it has one.
func (m *EtcdMember) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	if m.Host == nil {
		return etcdproc.Status(ctx, m.ClientURL)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		DialTimeout: time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(m.Host.grpcDialer())},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx, m.ClientURL)
}

// hostLeader is Leader for a cluster on test hosts: it asks each running
// member from the member's own host.
func (c *EtcdCluster) hostLeader(ctx context.Context) (*EtcdMember, error) {
	var errs []error
	running := 0
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		running++
		st, err := m.status(ctx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", m.ClientURL, err))
		case st.Leader == 0:
			errs = append(errs, fmt.Errorf("%s: no leader", m.ClientURL))
		case st.Leader == st.Header.MemberId:
			return m, nil
		}
	}
	return nil, fmt.Errorf("none of %d running members is the leader: %w", running, errors.Join(errs...))
}

// waitHostLeader polls hostLeader until a member leads or ctx ends.
func (c *EtcdCluster) waitHostLeader(ctx context.Context) (*EtcdMember, error) {
	for {
		m, err := c.hostLeader(ctx)
		if err == nil {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hostClient returns a client of every member that reaches each from the
// member's own host, so that no partition or link down keeps it from a
// running member: an observer outside the bed, as the client of a loopback
// cluster is.
func (c *EtcdCluster) hostClient() *clientv3.Client {
	c.t.Helper()
	hosts := make(map[string]*Host, len(c.Members))
	for _, m := range c.Members {
		hosts[netip.AddrPortFrom(m.Host.addr, HostEtcdClientPort).String()] = m.Host
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		h, ok := hosts[addr]
		if !ok {
			return nil, fmt.Errorf("dial %s: no member of the cluster there", addr)
		}
		return h.DialContext(ctx, "tcp", addr)
	}
	return newClientDialer(c.t, dial, c.Endpoints())
}

// EtcdClient returns an etcd client on h of endpoints (e.g. an
// EtcdCluster's Endpoints): it reaches them from inside h, as an agent
// running there would. It is closed when the test ends.
func (h *Host) EtcdClient(endpoints ...string) *clientv3.Client {
	h.net.t.Helper()
	return newClientDialer(h.net.t, h.grpcDialer(), endpoints)
}

// grpcDialer returns DialContext for gRPC's WithContextDialer.
func (h *Host) grpcDialer() func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return h.DialContext(ctx, "tcp", addr)
	}
}

// newClientDialer returns an etcd client of endpoints that dials them with
// dial, closed when the test ends.
func newClientDialer(t testing.TB, dial func(context.Context, string) (net.Conn, error), endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
	})
	if err != nil {
		t.Fatalf("etcd client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
