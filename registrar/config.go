package registrar

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/checks"
)

// Defaults of Config.
const (
	// DefaultTTL is how long an instance lives after its last heartbeat when
	// it asks for no TTL: the original NetSel's max_heartbeat_age.
	DefaultTTL = 60 * time.Second
	// DefaultMinTTL and DefaultMaxTTL bound the TTL a client may ask for.
	DefaultMinTTL = 5 * time.Second
	DefaultMaxTTL = time.Hour
	// DefaultRequestTimeout bounds a non-blocking request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultEtcdTimeout bounds one etcd call.
	DefaultEtcdTimeout = 5 * time.Second
	// DefaultReadHeaderTimeout, DefaultReadTimeout, DefaultWriteTimeout
	// and DefaultIdleTimeout are the HTTP server's limits.
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds a request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultBlockingWait and MaxBlockingWait are the default and the
	// largest ?wait= of a blocking query, as Consul's.
	DefaultBlockingWait = 5 * time.Minute
	MaxBlockingWait     = 10 * time.Minute
)

// DefaultVIPCIDR is the range VIPs come from unless configured: every
// 127/8 address is local on Linux, so one host binds VIP:port with no set-up.
var DefaultVIPCIDR = netip.MustParsePrefix("127.77.0.0/16")

// Config configures a Registrar.
type Config struct {
	// Client is the etcd client. Required; the Registrar does not close it.
	Client *clientv3.Client
	// LeaseClient, when set, carries the one keep-alive stream heartbeats
	// are pipelined on, instead of Client's gRPC connection. It is required
	// when Client has no gRPC connection: the runner sets it to its embedded
	// etcd's in-process lease server (embedetcd.Server.InProcessLeaseClient)
	// along with the in-process Client.
	LeaseClient pb.LeaseClient
	// Keyspace is the etcd layout. The zero value means the default prefix.
	Keyspace catalog.Keyspace
	// Index is a running index of Keyspace. When nil the Registrar creates
	// one, runs it, and stops it on Close.
	Index *catalog.Index
	// VIPCIDR is the range VIPs are allocated from (default 127.77.0.0/16).
	VIPCIDR netip.Prefix
	// HostAddr is the address other hosts reach this registrar's host at;
	// set it on a registrar serving many hosts. It makes the registrar
	// multi-host: it refuses loopback instance addresses (127.0.0.0/8,
	// ::1 and their IPv4-mapped forms), which only this host could reach,
	// with a 400 naming "address"; it fills in an empty address with the
	// address the request came from, or with HostAddr when that is
	// loopback; and it records that host in the instance (Instance.Host).
	// When unset the registrar is single-host: any address the policy
	// allows is registered, an empty one is filled in with the address
	// the request came from, and no host is recorded.
	HostAddr netip.Addr
	// DefaultTTL, MinTTL and MaxTTL: the TTL of an instance that asks for
	// none, and the bounds of one that does (60s, 5s, 1h).
	DefaultTTL, MinTTL, MaxTTL time.Duration
	// TokenFile, when set, names a file of bearer tokens; writes then need
	// "Authorization: Bearer <token>" with a token whose actions and service
	// patterns cover the request. One token a line:
	//	TOKEN [actions=read|register|admin,...] [services=GLOB,...] [name=LABEL]
	// "#" starts a comment line. A TOKEN has at least MinTokenLength (16)
	// characters and a GLOB is a path.Match pattern, negated with "[^...]"
	// ("[!" is refused); a file that breaks a rule is refused whole, naming
	// the line. ReloadTokens reads it again.
	TokenFile string
	// AuthReads makes the GET endpoints of /v1 need a token too (any token:
	// every action includes read). By default reads are open. /v1/health
	// and /metrics stay open. It needs TokenFile.
	AuthReads bool
	// TLSCertFile and TLSKeyFile, when set, make Serve answer HTTPS with
	// this PEM certificate chain and key. ReloadTLS reads them again.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile, when set, makes Serve require a client certificate
	// signed by one of the PEM CAs in it (mutual TLS). It needs TLSCertFile.
	TLSClientCAFile string
	// AuditLog, when set, names the file (appended to, created 0600) that
	// gets one JSON line for every write request: who, from where, what
	// and the answer ("-" or "stderr": the standard error). Heartbeats are
	// left out unless AuditHeartbeats. See audit.go.
	AuditLog        string
	AuditHeartbeats bool
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// how long a client may take to send a request's headers, its whole
	// request, how long writing an answer may take, and how long an idle
	// keep-alive connection stays open (10s, 30s, 30s, 2m; WriteTimeout is
	// at least RequestTimeout + 1s). Blocking
	// queries extend the read and write deadlines of their own request by
	// their wait. The TLS handshake is bounded by the smallest of them.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (default 64 KiB); larger
	// ones are answered 431.
	MaxHeaderBytes int
	// Logger receives the registrar's logs (default slog.Default()).
	Logger *slog.Logger
	// RequestTimeout bounds a non-blocking request (default 10s).
	RequestTimeout time.Duration
	// EtcdTimeout bounds one etcd call (default 5s; at most RequestTimeout).
	EtcdTimeout time.Duration
	// RenewCacheFor is how long a lease renewal answers further heartbeats
	// of that lease without another etcd request (default 500ms; negative
	// disables).
	RenewCacheFor time.Duration

	// AddrPolicy narrows which instance addresses may be registered: the
	// address:ports NetSel listens on (Reserved) and the operator's Allow
	// and Deny ranges. The classes no proxy may dial (unspecified,
	// broadcast, multicast, link-local, IPv4-mapped forms) are refused
	// whatever it says. VIPCIDR is added to its VIP ranges, and Serve adds
	// the address it listens on to Reserved. A refused address is a 400
	// naming "address".
	AddrPolicy addrpolicy.Config
	// Limits bound what clients may make the registrar hold or do; the
	// zero value means the documented defaults.
	Limits Limits
	// Checks configures the instances' health checks this registrar runs
	// with the other live registrars (package registrar/checks).
	Checks checks.Options
}

// leaseClient returns the lease API the renewer streams keep-alives on.
func (c *Config) leaseClient() pb.LeaseClient {
	if c.LeaseClient != nil {
		return c.LeaseClient
	}
	return pb.NewLeaseClient(c.Client.ActiveConnection())
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Client == nil {
		return cfg, errors.New("registrar: Config.Client is required")
	}
	if cfg.LeaseClient == nil && cfg.Client.ActiveConnection() == nil {
		return cfg, errors.New("registrar: Config.Client has no gRPC connection (an in-process client?): set Config.LeaseClient")
	}
	if cfg.Keyspace.Prefix() == "" {
		cfg.Keyspace = catalog.MustKeyspace(catalog.DefaultPrefix)
	}
	if cfg.Index != nil && cfg.Index.Keyspace() != cfg.Keyspace {
		return cfg, fmt.Errorf("registrar: index reads %s, registrar writes %s", cfg.Index.Keyspace().Prefix(), cfg.Keyspace.Prefix())
	}
	if !cfg.VIPCIDR.IsValid() {
		cfg.VIPCIDR = DefaultVIPCIDR
	}
	cfg.VIPCIDR = cfg.VIPCIDR.Masked()
	cfg.AddrPolicy.VIPRanges = append(slices.Clip(cfg.AddrPolicy.VIPRanges), cfg.VIPCIDR)
	if bits := cfg.VIPCIDR.Addr().BitLen() - cfg.VIPCIDR.Bits(); bits < 1 {
		return cfg, fmt.Errorf("registrar: VIP range %s has no room for a VIP", cfg.VIPCIDR)
	}
	if cfg.HostAddr.IsValid() {
		a := cfg.HostAddr.Unmap()
		if a.Zone() != "" || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
			return cfg, fmt.Errorf("registrar: host address %s is not one other hosts can reach this host at", cfg.HostAddr)
		}
		cfg.HostAddr = a
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MinTTL < time.Second || cfg.MinTTL > cfg.MaxTTL || cfg.DefaultTTL < cfg.MinTTL || cfg.DefaultTTL > cfg.MaxTTL {
		return cfg, fmt.Errorf("registrar: TTLs must satisfy 1s <= min (%v) <= default (%v) <= max (%v)", cfg.MinTTL, cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.EtcdTimeout <= 0 {
		cfg.EtcdTimeout = DefaultEtcdTimeout
	}
	cfg.EtcdTimeout = min(cfg.EtcdTimeout, cfg.RequestTimeout)
	if err := cfg.securityDefaults(); err != nil {
		return cfg, err
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.RenewCacheFor == 0 {
		cfg.RenewCacheFor = 500 * time.Millisecond
	}
	return cfg, nil
}

// securityDefaults checks the auth and TLS settings and fills in the HTTP
// server's limits.
func (cfg *Config) securityDefaults() error {
	if cfg.AuthReads && cfg.TokenFile == "" {
		return errors.New("registrar: AuthReads needs a TokenFile")
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return errors.New("registrar: TLSCertFile and TLSKeyFile go together")
	}
	if cfg.TLSClientCAFile != "" && cfg.TLSCertFile == "" {
		return errors.New("registrar: TLSClientCAFile needs TLSCertFile and TLSKeyFile")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{&cfg.ReadTimeout, DefaultReadTimeout},
		{&cfg.WriteTimeout, DefaultWriteTimeout},
		{&cfg.IdleTimeout, DefaultIdleTimeout},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	cfg.ReadHeaderTimeout = min(cfg.ReadHeaderTimeout, cfg.ReadTimeout)
	// An answer may take the whole RequestTimeout to compute.
	cfg.WriteTimeout = max(cfg.WriteTimeout, cfg.RequestTimeout+time.Second)
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return nil
}
