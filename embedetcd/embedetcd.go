// Package embedetcd runs a single-member etcd server inside the process, the
// single-machine default of NetSel. It manages its own space: periodic
// auto-compaction, a space quota, and, when the quota is reached (etcd's
// NOSPACE alarm), compaction, defragmentation and disarming of the alarm
// without an operator.
package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
)

// Config says where the embedded etcd keeps its data and listens.
type Config struct {
	// Dir holds the data; it is created when missing.
	Dir string
	// ClientURL is where clients connect, e.g. http://127.0.0.1:2379. A port
	// of 0 picks a free one; Server.ClientURL tells which.
	ClientURL string
	// PeerURL is the member's peer address, e.g. http://127.0.0.1:2380.
	PeerURL string
	// Name of the member. Defaults to "netsel".
	Name string
	// LogLevel is etcd's own log level: debug, info, warn or error. Defaults to error.
	LogLevel string
	// TLS, when CertFile and KeyFile are set, serves clients over HTTPS;
	// with TrustedCAFile it also requires client certificates.
	CertFile, KeyFile, TrustedCAFile string
	// StartTimeout bounds the wait for the server to be ready. Defaults to 60 s.
	StartTimeout time.Duration

	// QuotaBytes is the space quota of the database (default 2 GiB, etcd's
	// own). Past it etcd raises its NOSPACE alarm and refuses writes that
	// add data; the server then compacts all history, defragments and
	// disarms the alarm by itself (within MaintainEvery).
	QuotaBytes int64
	// CompactionRetention is how much history periodic auto-compaction
	// keeps (default 10m). A reader whose watch falls further behind
	// re-lists.
	CompactionRetention time.Duration
	// MaintainEvery is how often the server checks for NOSPACE and for a
	// database mostly not in use (default 10s).
	MaintainEvery time.Duration
	// MaxTxnOps bounds the operations of one transaction (default
	// DefaultMaxTxnOps; etcd's own default is 128). A snapshot restore is
	// one transaction of up to three operations a service.
	MaxTxnOps uint
	// DefragMinBytes: a database at least this large (default 64 MiB) with
	// less than half of it in use is defragmented, at most every 10 minutes.
	DefragMinBytes int64
	// Logger receives the space management's logs (default slog.Default()).
	Logger *slog.Logger
	// EtcdLogger, when set, receives etcd's own logs at LogLevel and above;
	// nil leaves them JSON on stderr, as etcd writes them.
	EtcdLogger *slog.Logger
}

// DefaultMaxTxnOps is the default of Config.MaxTxnOps: room for a forced
// snapshot restore of registrar.DefaultMaxServices services (two puts and
// a delete each), in one transaction.
const DefaultMaxTxnOps = 16384

// Server is a running embedded etcd.
type Server struct {
	etcd    *embed.Etcd
	closing *atomic.Bool
	stop    context.CancelFunc
	done    chan struct{}
}

// Start starts the server and waits until it serves clients.
func Start(ctx context.Context, c Config) (*Server, error) {
	if c.Dir == "" {
		return nil, errors.New("embedded etcd: a data directory is required")
	}
	if c.Name == "" {
		c.Name = "netsel"
	}
	if c.LogLevel == "" {
		c.LogLevel = "error"
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.QuotaBytes <= 0 {
		c.QuotaBytes = DefaultQuotaBytes
	}
	if c.CompactionRetention <= 0 {
		c.CompactionRetention = DefaultCompactionRetention
	}
	if c.MaintainEvery <= 0 {
		c.MaintainEvery = DefaultMaintainEvery
	}
	if c.DefragMinBytes <= 0 {
		c.DefragMinBytes = DefaultDefragMinBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	curl, err := url.Parse(c.ClientURL)
	if err != nil || curl.Host == "" {
		return nil, fmt.Errorf("embedded etcd: bad client URL %q", c.ClientURL)
	}
	purl, err := url.Parse(c.PeerURL)
	if err != nil || purl.Host == "" {
		return nil, fmt.Errorf("embedded etcd: bad peer URL %q", c.PeerURL)
	}
	closing := new(atomic.Bool)
	lg, err := newLogger(c.LogLevel, c.EtcdLogger, closing)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	cfg.Name = c.Name
	cfg.Dir = c.Dir
	cfg.LogLevel = c.LogLevel
	cfg.ListenClientUrls = []url.URL{*curl}
	cfg.AdvertiseClientUrls = []url.URL{*curl}
	cfg.ListenPeerUrls = []url.URL{*purl}
	cfg.AdvertisePeerUrls = []url.URL{*purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(c.Name)
	// Keep history bounded: a watcher that falls behind re-lists.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = c.CompactionRetention.String()
	cfg.QuotaBackendBytes = c.QuotaBytes
	cfg.MaxTxnOps = c.MaxTxnOps
	if c.CertFile != "" || c.KeyFile != "" {
		cfg.ClientTLSInfo.CertFile = c.CertFile
		cfg.ClientTLSInfo.KeyFile = c.KeyFile
		cfg.ClientTLSInfo.TrustedCAFile = c.TrustedCAFile
		cfg.ClientTLSInfo.ClientCertAuth = c.TrustedCAFile != ""
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: start in %s: %w", c.Dir, err)
	}
	t := time.NewTimer(c.StartTimeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		mctx, stop := context.WithCancel(context.Background())
		s := &Server{etcd: e, closing: closing, stop: stop, done: make(chan struct{})}
		go func() {
			defer close(s.done)
			s.maintain(mctx, c.MaintainEvery, c.DefragMinBytes, c.QuotaBytes, c.Logger)
		}()
		return s, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-t.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after %v", c.StartTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", ctx.Err())
	}
}

// ClientURL returns the URL clients connect to, with the real port.
func (s *Server) ClientURL() string {
	scheme := "http"
	if !s.etcd.Config().ClientTLSInfo.Empty() {
		scheme = "https"
	}
	return scheme + "://" + s.etcd.Clients[0].Addr().String()
}

// InProcessClient returns a client that calls the server directly, without
// gRPC, sockets or TLS: the cheapest way for parts in the same process to
// reach it. It carries no credentials, so it suits a server without etcd
// authentication enabled. The caller closes it before Close.
func (s *Server) InProcessClient() *clientv3.Client { return v3client.New(s.etcd.Server) }

// InProcessLeaseClient returns the lease API of the server as direct calls,
// for callers that drive LeaseKeepAlive streams themselves (an
// InProcessClient has no gRPC connection to build one on).
func (s *Server) InProcessLeaseClient() pb.LeaseClient {
	return adapter.LeaseServerToLeaseClient(v3rpc.NewQuotaLeaseServer(s.etcd.Server))
}

// Err returns a channel that reports a fatal server error.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the server and waits for it to stop.
func (s *Server) Close() {
	s.stop()
	<-s.done
	s.closing.Store(true)
	s.etcd.Close()
}
