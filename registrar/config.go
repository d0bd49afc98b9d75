package registrar

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
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
	// Keyspace is the etcd layout. The zero value means the default prefix.
	Keyspace catalog.Keyspace
	// Index is a running index of Keyspace. When nil the Registrar creates
	// one, runs it, and stops it on Close.
	Index *catalog.Index
	// VIPCIDR is the range VIPs are allocated from (default 127.77.0.0/16).
	VIPCIDR netip.Prefix
	// DefaultTTL, MinTTL and MaxTTL: the TTL of an instance that asks for
	// none, and the bounds of one that does (60s, 5s, 1h).
	DefaultTTL, MinTTL, MaxTTL time.Duration
	// TokenFile, when set, names a file of bearer tokens; writes then need
	// "Authorization: Bearer <token>". One token a line, optionally followed by
	// its scopes: "<token> [register|admin,...]"; "#" starts a comment.
	TokenFile string
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
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Client == nil {
		return cfg, errors.New("registrar: Config.Client is required")
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
	if bits := cfg.VIPCIDR.Addr().BitLen() - cfg.VIPCIDR.Bits(); bits < 1 {
		return cfg, fmt.Errorf("registrar: VIP range %s has no room for a VIP", cfg.VIPCIDR)
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
	if cfg.RenewCacheFor == 0 {
		cfg.RenewCacheFor = 500 * time.Millisecond
	}
	return cfg, nil
}
