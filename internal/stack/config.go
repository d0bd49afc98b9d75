// Package stack composes NetSel's parts into one process: etcd (embedded,
// or a client of an external cluster), the registrar, CoreDNS with the
// netsel plugin, and Caddy with the netsel app's HTTP and VIP proxies, all
// logging through one *slog.Logger. The runner (build/netsel) starts it for
// "netsel serve" and "netsel agent"; tests and benchmarks start it too, so
// what they test is what runs.
//
// CoreDNS and Caddy keep process-wide state: one stack per process.
package stack

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/caddymodule"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/checks"
)

// Config is what a stack runs. A nil part is not started.
type Config struct {
	// Etcd is how the parts reach etcd. With Embedded set, Start fills in
	// its endpoints.
	Etcd Etcd
	// Embedded, when set, runs etcd in this process; its Logger and
	// EtcdLogger default to Logger.
	Embedded *embedetcd.Config
	// Keyspace is the keyspace every part shares.
	Keyspace catalog.Keyspace
	// VIPCIDR is the range VIPs are allocated from (e.g. 127.77.0.0/16).
	VIPCIDR netip.Prefix
	// Locality, when set, is the instance zone (catalog.Instance.Zone)
	// this host is in: DNS answers and both proxies prefer its instances
	// (the netsel plugin's and the Caddy app's locality).
	Locality string

	// Registrar, when set, runs the registrar.
	Registrar *Registrar
	// DNS, when set, runs CoreDNS.
	DNS *DNS
	// Proxy, when set, runs Caddy with the HTTP proxy and the VIP proxy.
	Proxy *Proxy

	// AddrPolicy is the instance address policy of the registrar and the
	// proxies: the operator's allow and deny lists and every address:port
	// the process listens on, resolved. VIPCIDR is added by each part.
	AddrPolicy addrpolicy.Config
	// ReservedAddrs are the process's listen addresses and etcd endpoints
	// as given, for the Caddy app's dial_policy.
	ReservedAddrs []string

	// Logger receives every part's logs, each with a part= attribute.
	Logger *slog.Logger
	// LogLevel is Logger's level, handed to the parts that filter their
	// own logs (Caddy, etcd).
	LogLevel slog.Level
	// StopTimeout bounds Close. Default: 10s.
	StopTimeout time.Duration
}

// Registrar is the registrar's part of a stack.
type Registrar struct {
	// Addr is its listen address, e.g. 127.0.0.1:9000.
	Addr string
	// TokenFile, AuthReads, TLSCertFile, TLSKeyFile and TLSClientCAFile
	// are registrar.Config's; the token file and certificate are reloaded
	// on SIGHUP.
	TokenFile                                string
	AuthReads                                bool
	TLSCertFile, TLSKeyFile, TLSClientCAFile string
	// AuditLog and AuditHeartbeats are registrar.Config's: the file of one
	// JSON line per write request ("-": stderr), heartbeats included or not.
	AuditLog        string
	AuditHeartbeats bool
	// Limits are the registrar's limits.
	Limits registrar.Limits
	// HostAddr, when set, is the address other hosts reach this host at:
	// the registrar then serves many hosts (registrar.Config.HostAddr).
	HostAddr netip.Addr
	// Checks configures the health checks it runs with the other
	// registrars (registrar.Config.Checks).
	Checks checks.Options
	// Configure, when set, changes the registrar's config last (tests).
	Configure func(*registrar.Config)
}

// DNS is CoreDNS's part of a stack.
type DNS struct {
	// Addr is where it serves, UDP and TCP (127.0.0.1:5353).
	Addr string
	// Zone is the zone services are answered in (netsel.). The reverse
	// zone of the VIP range is served too.
	Zone string
	// Forward are the upstream resolvers of names outside the zone
	// (host:port or IP); empty refuses them.
	Forward []string
	// QueryLog logs every query (CoreDNS's log plugin).
	QueryLog bool
}

// Proxy is Caddy's part of a stack.
type Proxy struct {
	// HTTPAddr is the HTTP proxy's listen address; empty disables it.
	HTTPAddr string
	// Zone is the zone whose <service>.<zone> Hosts the HTTP proxy routes.
	Zone string
	// AccessLog logs every HTTP request (Caddy's access log).
	AccessLog bool
	// VIP turns on the layer-4 listeners on every service VIP:port, with
	// VIPLimits' bounds (Enabled is set by VIP).
	VIP       bool
	VIPLimits caddymodule.VIPProxyConfig
	// MaxHTTPConns bounds the HTTP proxy's client connections (0: none).
	MaxHTTPConns int
	// TagsHeader, if set, is the request header whose tags narrow the
	// HTTP proxy's instances (caddymodule.Upstreams.TagsHeader).
	TagsHeader string
}
