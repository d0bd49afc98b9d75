package main

import (
	"log/slog"
	"net/netip"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/catalog"
)

// stackConfig is what the runner hands to each part it starts: where etcd is
// and where each part listens. An empty address disables that part.
type stackConfig struct {
	// EtcdEndpoints are the etcd client URLs, e.g. http://127.0.0.1:2379.
	EtcdEndpoints []string
	// EtcdUsername, EtcdPassword authenticate to an external etcd.
	EtcdUsername, EtcdPassword string
	// EtcdCertFile, EtcdKeyFile, EtcdCAFile configure TLS to etcd.
	EtcdCertFile, EtcdKeyFile, EtcdCAFile string
	// Etcd is a client the runner already holds, for in-process parts.
	Etcd *clientv3.Client
	// EtcdLease is the lease API the registrar streams keep-alives on; nil
	// means Etcd's own connection.
	EtcdLease pb.LeaseClient
	// Keyspace is the keyspace shared by every part.
	Keyspace catalog.Keyspace
	// RegistrarAddr is the registrar's listen address (127.0.0.1:9000).
	RegistrarAddr string
	// VIPCIDR is the range VIPs are allocated from (127.77.0.0/16).
	VIPCIDR netip.Prefix
	// DNSAddr is where CoreDNS serves the netsel zone (127.0.0.1:5353).
	DNSAddr string
	// DNSZone is the zone served (netsel.).
	DNSZone string
	// HTTPAddr is the Caddy HTTP proxy's listen address (127.0.0.1:8081).
	HTTPAddr string
	// VIPProxy turns on the layer-4 listeners on every service VIP:port.
	VIPProxy bool
	// Logger is the runner's logger.
	Logger *slog.Logger

	// AddrPolicy is the instance address policy of the registrar and the
	// proxies: the operator's allow and deny lists and every address:port
	// the runner listens on (ReservedAddrs, resolved). VIPCIDR is added by
	// each part.
	AddrPolicy addrpolicy.Config
	// ReservedAddrs are the runner's listen addresses and etcd endpoints as
	// given, for the Caddy app's dial_policy.
	ReservedAddrs []string
	// Budget is the runner's share of descriptors (budget.go); its zero
	// value leaves every part at its own defaults.
	Budget fdBudget
	// VIPLimits are extra vip_proxy options: the VIP proxy's limits.
	VIPLimits map[string]any
	// ReaderUsername, ReaderPassword, when ReaderUsername is set, are the
	// etcd user the readers (DNS, proxies) log in as in place of
	// EtcdUsername: a user whose role may only read the prefix.
	ReaderUsername, ReaderPassword string
}

// readerCredentials returns the etcd user and password of the readers.
func (c stackConfig) readerCredentials() (user, password string) {
	if c.ReaderUsername != "" {
		return c.ReaderUsername, c.ReaderPassword
	}
	return c.EtcdUsername, c.EtcdPassword
}
