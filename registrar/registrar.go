// Package registrar is NetSel's registrar: the REST service (/v1) through
// which services register instances, heartbeat and deregister, and the only
// writer of NetSel's etcd keyspace.
//
// Writes are all-or-nothing etcd transactions: an instance key is put under
// a fresh lease in the same transaction that, for a new service, reserves
// its VIP by compare-and-create, so registrars racing on one etcd never hand
// out one VIP twice. Heartbeats renew leases over one shared keep-alive
// stream. Reads and blocking queries are answered from a watch-fed
// catalog.Index.
package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/checks"
)

// Registrar serves the registrar REST API over one etcd keyspace. It keeps
// only soft state; any number of registrars may share one etcd.
type Registrar struct {
	cfg     Config
	log     *slog.Logger
	ks      catalog.Keyspace
	ix      *catalog.Index
	renewer *renewer
	leases  pb.LeaseClient
	reaper  *reaper
	alarms  *alarms
	seen    *seenInstances
	tokens  *tokens
	tls     *serverTLS
	audit   *auditLog
	metrics *metrics
	vips    *allocator
	// policy decides which instance addresses may be registered; Serve
	// replaces it to add its listener (policyMu serialises that).
	policy   atomic.Pointer[addrpolicy.Policy]
	policyMu sync.Mutex
	// Limits' state (limits.go).
	rate     *rateLimiter
	blocking *slots
	quota    *tokenQuota
	lists    listCache
	sd       sdCache
	handler  http.Handler
	// lastWrite is the etcd revision of this registrar's latest write.
	lastWrite atomic.Int64
	// checker runs health checks; nil when they are disabled.
	checker *checks.Checker

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New returns a Registrar configured by cfg. It does not wait for etcd:
// until the index has read the keyspace, /v1/health answers 503. Call Close
// to stop its background work.
func New(ctx context.Context, cfg Config) (*Registrar, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Registrar{
		cfg:     cfg,
		log:     cfg.Logger,
		ks:      cfg.Keyspace,
		ix:      cfg.Index,
		metrics: newMetrics(),
	}
	if cfg.TokenFile != "" {
		if r.tokens, err = loadTokens(cfg.TokenFile); err != nil {
			return nil, fmt.Errorf("registrar: %w", err)
		}
		r.checkTokenFileMode()
	}
	if r.tls, err = loadServerTLS(cfg); err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	r.vips = newAllocator(cfg.VIPCIDR)
	policy, err := addrpolicy.New(cfg.AddrPolicy)
	if err != nil {
		return nil, fmt.Errorf("registrar: address policy: %w", err)
	}
	r.policy.Store(policy)
	r.rate = newRateLimiter(cfg.Limits.RegisterRate, cfg.Limits.RegisterBurst)
	r.blocking = newSlots(cfg.Limits.MaxBlockingQueries, cfg.Limits.MaxBlockingPerClient)
	r.seen = newSeenInstances()
	r.quota = newTokenQuota(cfg.Limits.MaxInstancesPerToken, r.seen.alive)

	if r.audit, err = openAudit(&cfg); err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	if r.ix == nil {
		r.ix = catalog.NewIndex(cfg.Client, cfg.Keyspace, catalog.IndexOptions{
			Logf: func(format string, args ...any) { r.log.Warn(fmt.Sprintf(format, args...)) },
		})
		r.wg.Go(func() { r.ix.Run(bg) })
	}
	r.leases = cfg.leaseClient()
	r.renewer = newRenewer(bg, r.leases, r.log, r.metrics, cfg.RenewCacheFor)
	r.reaper = newReaper(cfg.Client, r.log, r.metrics, cfg.EtcdTimeout, cfg.MaxTTL, r.renewer.forget)
	r.alarms = newAlarms(cfg.Client, r.log, r.metrics, cfg.EtcdTimeout)
	r.wg.Go(func() { r.reaper.run(bg) })
	r.wg.Go(func() { r.alarms.run(bg) })
	r.wg.Go(func() { r.seen.run(bg) })
	r.wg.Go(func() { r.reviveLost(bg) })
	if err := r.startChecks(bg); err != nil {
		cancel()
		r.renewer.close()
		r.wg.Wait()
		r.audit.close()
		return nil, fmt.Errorf("registrar: %w", err)
	}
	r.handler = r.routes()
	r.log.Info("registrar ready", "prefix", r.ks.Prefix(), "vip_range", cfg.VIPCIDR.String(),
		"default_ttl", cfg.DefaultTTL, "auth", r.tokens != nil, "auth_reads", cfg.AuthReads,
		"tls", r.tls != nil, "mtls", cfg.TLSClientCAFile != "",
		"max_services", cfg.Limits.MaxServices, "register_rate", cfg.Limits.RegisterRate,
		"max_blocking", cfg.Limits.MaxBlockingQueries)
	return r, nil
}

// Handler returns the registrar's HTTP handler: /v1/..., /metrics and /ui/.
func (r *Registrar) Handler() http.Handler { return r.handler }

// Index returns the catalog index the registrar reads.
func (r *Registrar) Index() *catalog.Index { return r.ix }

// Close stops the registrar's background work: the lease renewer and the
// index when the registrar owns it. It does not close the etcd client, and
// leaves every instance in etcd to live out its lease.
func (r *Registrar) Close() error {
	r.once.Do(func() {
		r.cancel()
		r.renewer.close()
		r.wg.Wait()
		r.audit.close()
	})
	return nil
}

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 10 * time.Second

// Serve answers HTTP requests on ln (HTTPS when Config has a TLS
// certificate) until ctx ends, then shuts the server
// down gracefully: it stops accepting, ends blocking queries early with
// their current answer, and waits up to 10s for requests in flight. It
// returns nil after a clean shutdown. Serve does not call Close. From then
// on no instance may be registered at ln's address.
func (r *Registrar) Serve(ctx context.Context, ln net.Listener) error {
	if err := r.reserve(ln.Addr()); err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	drain := make(chan struct{})
	srv := r.httpServer(func(net.Listener) context.Context {
		return context.WithValue(context.Background(), drainKey{}, (<-chan struct{})(drain))
	})
	srv.RegisterOnShutdown(func() { close(drain) })
	conns := newConnLimit(r.cfg.Limits.MaxConns, r.metrics.limited.WithLabelValues("connections").Inc)
	srv.ConnState = conns.connState
	ln = conns.listener(ln)
	errc := make(chan error, 1)
	go func() { errc <- r.serveOn(srv, ln) }()
	r.log.Info("registrar listening", "addr", ln.Addr().String(), "scheme", r.scheme())
	select {
	case err := <-errc:
		return fmt.Errorf("registrar: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("registrar: shutdown: %w", err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	r.log.Info("registrar stopped", "addr", ln.Addr().String())
	return err
}

// drainKey marks the channel, in a request context, that closes when the
// server shuts down, so blocking queries answer at once.
type drainKey struct{}

func draining(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(drainKey{}).(<-chan struct{})
	return ch // nil (never ready) outside Serve, e.g. under httptest
}
