package stack

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/logs"
)

// Stack is a running set of parts.
type Stack struct {
	// Etcd is the stack's own etcd client (the registrar's).
	Etcd *clientv3.Client
	// Endpoints are the etcd client URLs every part uses.
	Endpoints []string
	// Embedded is the embedded etcd, nil with an external cluster.
	Embedded *embedetcd.Server
	// RegistrarAddr is where the registrar listens, nil without one.
	RegistrarAddr net.Addr

	logger  *slog.Logger
	timeout time.Duration
	stops   []func()
}

// Start starts every part of c, in order etcd, registrar, DNS, proxies; on
// an error it stops what it started and returns the error. Parts keep
// running after ctx ends, until Close. Until Close, Go's standard log
// package, which CoreDNS logs through, writes to c.Logger too.
func Start(ctx context.Context, c Config) (*Stack, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	s := &Stack{logger: c.Logger, timeout: c.StopTimeout}
	if err := s.start(ctx, &c); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context, c *Config) error {
	// CoreDNS logs through the standard log package.
	w, flags := log.Writer(), log.Flags()
	log.SetFlags(0)
	log.SetOutput(logs.StdWriter(c.Logger))
	s.stops = append(s.stops, func() {
		log.SetOutput(w)
		log.SetFlags(flags)
	})

	var lease pb.LeaseClient
	if e := c.Embedded; e != nil {
		ec := *e
		if ec.Logger == nil {
			ec.Logger = logs.Part(c.Logger, "etcd")
		}
		if ec.EtcdLogger == nil {
			ec.EtcdLogger = logs.Part(c.Logger, "etcd")
		}
		if ec.LogLevel == "" {
			ec.LogLevel = etcdLevel(c.LogLevel)
		}
		c.Logger.Info("starting embedded etcd", "part", "etcd", "client", ec.ClientURL, "data", ec.Dir,
			"client_cert_auth", ec.TrustedCAFile != "")
		srv, err := embedetcd.Start(ctx, ec)
		if err != nil {
			return err
		}
		s.Embedded = srv
		s.stops = append(s.stops, srv.Close)
		c.Etcd.Endpoints = []string{srv.ClientURL()}
		if c.Etcd.Username == "" && c.Etcd.CertFile == "" {
			// Without credentials of any kind (user or client
			// certificate) to lose, the registrar may skip gRPC.
			s.Etcd, lease = inProcessEtcd(ctx, srv, c.Logger)
		}
	} else {
		c.Logger.Info("using external etcd", "part", "etcd", "endpoints", c.Etcd.Endpoints)
	}
	s.Endpoints = c.Etcd.Endpoints
	if err := c.Etcd.Validate(); err != nil {
		return err
	}
	if s.Etcd == nil {
		client, err := c.Etcd.Client(logs.Part(c.Logger, "etcd-client"))
		if err != nil {
			return err
		}
		s.Etcd = client
	}
	s.stops = append(s.stops, func() { s.Etcd.Close() })

	if c.Registrar != nil {
		addr, stop, err := startRegistrar(ctx, c, s.Etcd, lease)
		if err != nil {
			return fmt.Errorf("registrar: %w", err)
		}
		s.RegistrarAddr = addr
		s.stops = append(s.stops, stop)
	}
	if c.DNS != nil {
		stop, err := startDNS(c)
		if err != nil {
			return fmt.Errorf("DNS: %w", err)
		}
		s.stops = append(s.stops, stop)
	}
	if c.Proxy != nil {
		stop, err := startProxies(c)
		if err != nil {
			return fmt.Errorf("proxies: %w", err)
		}
		s.stops = append(s.stops, stop)
	}
	return nil
}

// ErrStopTimeout reports a Close that took longer than the stop timeout.
var ErrStopTimeout = errors.New("graceful shutdown took too long")

// Close stops every part in the reverse order of Start, waiting at most the
// stop timeout. Caddy's process-wide default logger keeps writing to the
// stack's logger until another Caddy config replaces it.
func (s *Stack) Close() error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := len(s.stops) - 1; i >= 0; i-- {
			s.stops[i]()
		}
	}()
	select {
	case <-done:
		return nil
	case <-time.After(s.timeout):
		return fmt.Errorf("%w (%v)", ErrStopTimeout, s.timeout)
	}
}

// inProcessEtcd returns a client and lease API that call the embedded etcd
// directly, with no gRPC or socket in between, for the registrar: nil when
// etcd authentication is on (the in-process client carries no credentials)
// or its state cannot be read, and the parts then dial srv as any client.
// Authentication turned on while the stack runs takes a restart with a
// user to follow.
func inProcessEtcd(ctx context.Context, srv *embedetcd.Server, logger *slog.Logger) (*clientv3.Client, pb.LeaseClient) {
	c := srv.InProcessClient()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.AuthStatus(ctx)
	if err != nil || st.Enabled {
		c.Close()
		logger.Info("the registrar reaches the embedded etcd over its client URL", "part", "etcd", "auth_enabled", err == nil && st.Enabled, "err", err)
		return nil, nil
	}
	logger.Info("the registrar calls the embedded etcd in-process", "part", "etcd")
	return c, srv.InProcessLeaseClient()
}

// etcdLevel is the embedded etcd's own log level for the stack's level l:
// debug at debug, else error: etcd's info and warning records (a dozen at
// every start and stop: single-port serving, simple tokens, closed
// listeners) are about etcd's defaults, not NetSel's, and call for nothing.
func etcdLevel(l slog.Level) string {
	if l <= slog.LevelDebug {
		return "debug"
	}
	return "error"
}
