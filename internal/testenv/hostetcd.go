//go:build linux

package testenv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
	return startMembers(t, specs, "netsel-test-"+hosts[0].net.id, hosts, nil)
}

// dial returns how to reach c's members: each from the member's own host,
// so that no partition or link down keeps an observer outside the bed (as
// the client of a loopback cluster is) from a running member; nil for a
// cluster on loopback.
func (c *EtcdCluster) dial() etcdproc.Dialer {
	if c.Members[0].Host == nil {
		return nil
	}
	hosts := make(map[string]*Host, len(c.Members))
	for _, m := range c.Members {
		hosts[netip.AddrPortFrom(m.Host.addr, HostEtcdClientPort).String()] = m.Host
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		h, ok := hosts[addr]
		if !ok {
			return nil, fmt.Errorf("dial %s: no member of the cluster there", addr)
		}
		return h.DialContext(ctx, "tcp", addr)
	}
}

// dial returns how to reach m: from its own host; nil on loopback.
func (m *EtcdMember) dial() etcdproc.Dialer {
	if m.Host == nil {
		return nil
	}
	return m.Host.grpcDialer()
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
