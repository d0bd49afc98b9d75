// Package checks runs the active health checks that instances declare at
// registration, shared among the live registrars with no agent per node.
//
// Every registrar keeps a membership key under a lease of its own. Each
// instance with checks is checked by exactly one live member, chosen by
// rendezvous hashing of "<service>/<id>" over the members the catalog
// index shows, so a member joining or leaving moves only its share, and the
// share of a member whose key expires is taken over as soon as the index
// sees it go. Probe results pass through per-check thresholds into an
// instance state (passing, warning, critical) that is written to etcd —
// beside the instance, under its lease — only when it differs from what
// the catalog already shows.
package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and bounds of Options.
const (
	// DefaultMemberTTL is the TTL of a registrar's membership lease: how
	// long its share goes unchecked when it dies.
	DefaultMemberTTL = 10 * time.Second
	// MinMemberTTL is the shortest membership TTL (etcd's own minimum
	// lease TTL is about 1.5s with its default timing).
	MinMemberTTL = 2 * time.Second
	// DefaultMaxConcurrent is how many probes one registrar runs at once.
	// With the 2s default timeout it checks 10,000 instances at 10s
	// intervals even if a fifth of them hang.
	DefaultMaxConcurrent = 512
	// writers is how many state writes go to etcd at once, and
	// writeQueue how many may wait; a change that finds the queue full is
	// written after the instance's next probe.
	writers    = 4
	writeQueue = 1024
)

// Options are the settings of the checks a registrar runs.
type Options struct {
	// Disabled makes the registrar run no checks and hold no membership
	// key: the other registrars share every check.
	Disabled bool
	// MemberID names the registrar among the members: a DNS label unique
	// among live registrars (default: the host name and a random suffix).
	MemberID string
	// MemberTTL is the TTL of the membership lease (default 10s, at least
	// 2s, whole seconds): a registrar that dies stops owning its share
	// this long after its last renewal.
	MemberTTL time.Duration
	// MaxConcurrent bounds the probes in flight (default 512); probes due
	// beyond it wait for a free slot.
	MaxConcurrent int
}

// WithDefaults returns o with its defaults filled in, or an error naming
// the setting at fault.
func (o Options) WithDefaults() (Options, error) {
	if o.MemberID == "" {
		o.MemberID = DefaultMemberID()
	} else if err := catalog.CheckName("member id", o.MemberID); err != nil {
		return o, fmt.Errorf("checks: %w", err)
	}
	if o.MemberTTL == 0 {
		o.MemberTTL = DefaultMemberTTL
	}
	o.MemberTTL = o.MemberTTL.Round(time.Second)
	if o.MemberTTL < MinMemberTTL {
		return o, fmt.Errorf("checks: member TTL %v is under %v", o.MemberTTL, MinMemberTTL)
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxConcurrent < 1 {
		return o, errors.New("checks: MaxConcurrent must be positive")
	}
	return o, nil
}

// Config configures a Checker.
type Config struct {
	Options
	// Client writes states and the membership key.
	Client *clientv3.Client
	// Leases grants the membership lease and Renew renews it (returning
	// its TTL in seconds, <= 0 once it is gone): the registrar's own
	// lease client and shared keep-alive stream.
	Leases pb.LeaseClient
	Renew  func(ctx context.Context, lease int64) (ttl int64, err error)
	// Keyspace is the layout; Index a running index of it.
	Keyspace catalog.Keyspace
	Index    *catalog.Index
	// Allow reports whether an address may be dialed (the registrar's
	// address policy); probes never dial an address it refuses.
	Allow func(netip.AddrPort) error
	// Addr is the registrar's API address, shown in its membership key.
	Addr string
	// EtcdTimeout bounds one etcd call.
	EtcdTimeout time.Duration
	Logger      *slog.Logger
	// Registerer receives the checker's metrics (none when nil).
	Registerer prometheus.Registerer
}

// Checker runs the checks of the instances this registrar owns.
type Checker struct {
	cfg     Config
	log     *slog.Logger
	prober  *prober
	metrics *metrics

	probes, writes, writeFails, changes atomic.Int64
	owned                               atomic.Int64

	// last holds the instances owned, for LastProbe; the loop writes it.
	mu   sync.Mutex
	last map[string]*inst
}

// New returns a Checker; Run runs it.
func New(cfg Config) (*Checker, error) {
	o, err := cfg.Options.WithDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Options = o
	if cfg.Client == nil || cfg.Leases == nil || cfg.Renew == nil || cfg.Index == nil {
		return nil, errors.New("checks: Client, Leases, Renew and Index are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.EtcdTimeout <= 0 {
		cfg.EtcdTimeout = 5 * time.Second
	}
	c := &Checker{
		cfg:     cfg,
		log:     cfg.Logger,
		prober:  newProber(cfg.Allow),
		metrics: newMetrics(cfg.Registerer),
		last:    map[string]*inst{},
	}
	return c, nil
}

// ID returns the checker's member id.
func (c *Checker) ID() string { return c.cfg.MemberID }

// Run keeps the membership key and checks the instances this member owns
// until ctx ends; then it revokes the membership lease, so the others take
// the share over at once.
func (c *Checker) Run(ctx context.Context) error {
	val, err := catalog.EncodeMember(&catalog.Member{ID: c.cfg.MemberID, Addr: c.cfg.Addr, Started: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("checks: %w", err)
	}
	m := &member{
		cli: c.cfg.Client, leases: c.cfg.Leases, renew: c.cfg.Renew, log: c.log,
		key: c.cfg.Keyspace.MemberKey(c.cfg.MemberID), value: val,
		ttl: c.cfg.MemberTTL, timeout: c.cfg.EtcdTimeout,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { m.run(ctx) })
	if err := c.cfg.Index.WaitSynced(ctx); err != nil {
		return nil
	}
	newLoop(c).run(ctx)
	c.prober.http.CloseIdleConnections()
	return nil
}

// Stats are counters of a Checker, for benchmarks and tests.
type Stats struct {
	// Probes counts the probes run; Writes the state writes etcd
	// applied, WriteFailures those it did not answer or refused, and
	// Changes the writes that changed a state.
	Probes, Writes, WriteFailures, Changes int64
	// Owned is the number of instances with checks this member checks.
	Owned int64
}

// Stats returns the checker's counters.
func (c *Checker) Stats() Stats {
	return Stats{
		Probes: c.probes.Load(), Writes: c.writes.Load(), WriteFailures: c.writeFails.Load(),
		Changes: c.changes.Load(), Owned: c.owned.Load(),
	}
}

// LastProbe returns when the last probe of instance id of service, by this
// member, finished, and false when this member does not check it.
func (c *Checker) LastProbe(service, id string) (time.Time, bool) {
	c.mu.Lock()
	in := c.last[key(service, id)]
	c.mu.Unlock()
	if in == nil {
		return time.Time{}, false
	}
	ns := in.lastProbe.Load()
	if ns == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, ns), true
}

func key(service, id string) string { return service + "/" + id }
