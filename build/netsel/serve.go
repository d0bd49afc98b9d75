package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/logs"
	"github.com/netsel/netsel/internal/stack"
	"github.com/netsel/netsel/registrar/checks"
	"github.com/netsel/netsel/vipnet"
)

// serveFlags are the flags of "netsel serve".
type serveFlags struct {
	dataDir     string
	etcd        string
	etcdListen  string
	etcdPeer    string
	etcdCert    string
	etcdKey     string
	etcdCA      string
	etcdUser    string
	etcdTLSCert string
	etcdTLSKey  string
	etcdTLSCA   string
	prefix      string
	registrar   string
	vipCIDR     string
	tokenFile   string
	authReads   bool
	tlsCert     string
	tlsKey      string
	tlsClientCA string
	auditLog    string
	auditBeats  bool
	dns         string
	zone        string
	http        string
	vipProxy    bool
	logLevel    string
	logFormat   string

	dnsForward    string
	dnsQueryLog   bool
	httpAccessLog bool
	stopTimeout   time.Duration

	// httpTagsHeader is -http-tags-header.
	httpTagsHeader string
	// locality is -locality.
	locality string

	// The instance address policy.
	allowCIDR      string
	denyCIDR       string
	limits         limitFlags
	etcdReaderUser string
	// The embedded etcd's space management.
	etcdQuotaBytes     int64
	etcdCompactionKeep time.Duration

	// The health checks the registrar runs.
	checks          bool
	memberID        string
	memberTTL       time.Duration
	checksMaxProbes int

	// agent is set for "netsel agent"; advertise is its host address.
	agent     bool
	advertise string
}

const serveUsage = `Usage: netsel [serve] [flags]

Runs NetSel on this machine: etcd (embedded unless -etcd is given), the registrar,
the DNS server and the HTTP and VIP proxies, all on loopback by default.

Flags:
`

const agentUsage = `Usage: netsel agent -etcd URL[,URL...] [flags]

Runs NetSel's per-host role against an external etcd cluster: the DNS server,
the HTTP proxy, the VIP proxy and a registrar (-registrar "" for none), on
loopback by default. Run one on every host; see README "Many hosts".

Flags:
`

// serve runs "netsel serve", or "netsel agent" when agent is set.
func serve(ctx context.Context, args []string, stderr io.Writer, agent bool) error {
	name, usage := "netsel serve", serveUsage
	if agent {
		name, usage = "netsel agent", agentUsage
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := serveFlags{agent: agent}
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return errUsage
	}
	if agent && f.etcd == "" {
		fmt.Fprintf(stderr, "%s: -etcd is required: an agent joins an external etcd cluster\n", name)
		return errUsage
	}
	logger, err := f.logger(stderr)
	if err != nil {
		return err
	}

	return runStack(ctx, f, logger)
}

// runStack starts every part, waits for ctx to end, then stops them in reverse order.
func runStack(ctx context.Context, f serveFlags, base *slog.Logger) error {
	logger := logs.Part(base, "netsel")
	cfg, err := f.stackConfig(ctx, base)
	if err != nil {
		return err
	}
	undo := func() error { return nil }
	if cfg.Proxy != nil && cfg.Proxy.VIP {
		if undo, err = vipRange(ctx, cfg.VIPCIDR, logger); err != nil {
			return err
		}
	}
	defer func() {
		if err := undo(); err != nil {
			logger.Error("removing the VIP range's local route", "err", err, "command", vipnet.UndoCommand(cfg.VIPCIDR))
		}
	}()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		return err
	}
	registrarURL := ""
	if f.registrar != "" {
		registrarURL = f.registrarURL()
	}
	logger.Info("netsel ready", "registrar", registrarURL, "dns", f.dns, "http_proxy", f.http, "vip_cidr", cfg.VIPCIDR)
	<-ctx.Done()
	logger.Info("shutting down")
	if err := s.Close(); err != nil {
		logger.Error("exiting", "err", err)
		return nil
	}
	logger.Info("netsel stopped")
	return nil
}

// stackConfig returns the stack f describes.
func (f *serveFlags) stackConfig(ctx context.Context, logger *slog.Logger) (stack.Config, error) {
	ks, err := catalog.NewKeyspace(f.prefix)
	if err != nil {
		return stack.Config{}, fmt.Errorf("-prefix: %w", err)
	}
	cidr, err := netip.ParsePrefix(f.vipCIDR)
	if err != nil {
		return stack.Config{}, fmt.Errorf("-vip-cidr: %w", err)
	}
	if err := f.checkVIPRange(cidr); err != nil {
		return stack.Config{}, err
	}
	if err := f.checkTLS(); err != nil {
		return stack.Config{}, err
	}
	if f.locality != "" {
		if err := catalog.CheckName("-locality", f.locality); err != nil {
			return stack.Config{}, err
		}
	}
	if f.limits.vipUDPIdle < 0 || f.limits.vipHeaderTimeout < 0 {
		return stack.Config{}, errors.New("-vip-udp-idle-timeout and -vip-header-timeout must not be negative")
	}
	policy, err := f.addrPolicy(ctx)
	if err != nil {
		return stack.Config{}, err
	}
	budget, err := f.limits.plan(logs.Part(logger, "netsel"))
	if err != nil {
		return stack.Config{}, err
	}
	level, _ := logs.ParseLevel(f.logLevel)
	cfg := stack.Config{
		Etcd: stack.Etcd{
			Username:       f.etcdUser,
			Password:       os.Getenv("NETSEL_ETCD_PASSWORD"),
			ReaderUsername: f.etcdReaderUser,
			ReaderPassword: os.Getenv("NETSEL_ETCD_READER_PASSWORD"),
			CertFile:       f.etcdCert,
			KeyFile:        f.etcdKey,
			CAFile:         f.etcdCA,
		},
		Keyspace: ks,
		VIPCIDR:  cidr.Masked(),
		Locality: f.locality,

		AddrPolicy:    policy,
		ReservedAddrs: f.reservedAddrs(),
		Logger:        logger,
		LogLevel:      level,
		StopTimeout:   f.stopTimeout,
	}
	if f.registrar != "" {
		cfg.Registrar = &stack.Registrar{
			Addr:            f.registrar,
			TokenFile:       f.tokenFile,
			AuthReads:       f.authReads,
			TLSCertFile:     f.tlsCert,
			TLSKeyFile:      f.tlsKey,
			TLSClientCAFile: f.tlsClientCA,
			AuditLog:        f.auditLog,
			AuditHeartbeats: f.auditBeats,
			Limits:          f.limits.registrarLimits(budget),
			Checks: checks.Options{
				Disabled:      !f.checks,
				MemberID:      f.memberID,
				MemberTTL:     f.memberTTL,
				MaxConcurrent: f.checksMaxProbes,
			},
		}
		if f.agent {
			if cfg.Registrar.HostAddr, err = f.hostAddr(ctx); err != nil {
				return stack.Config{}, err
			}
		}
	}
	if f.dns != "" {
		cfg.DNS = &stack.DNS{Addr: f.dns, Zone: f.zone, QueryLog: f.dnsQueryLog}
		if cfg.DNS.Forward, err = f.dnsUpstreams(); err != nil {
			return stack.Config{}, err
		}
	}
	if f.http != "" || f.vipProxy {
		cfg.Proxy = &stack.Proxy{
			HTTPAddr:     f.http,
			Zone:         f.zone,
			AccessLog:    f.httpAccessLog,
			VIP:          f.vipProxy,
			VIPLimits:    f.limits.vipProxyLimits(budget),
			MaxHTTPConns: budget.HTTPConns,
			TagsHeader:   f.httpTagsHeader,
		}
	}
	if f.etcd == "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return stack.Config{}, fmt.Errorf("etcd data directory: %w", err)
		}
		scheme := "http"
		if f.etcdTLSCert != "" {
			scheme = "https"
			f.embeddedEtcdClientTLS(&cfg.Etcd)
		}
		cfg.Embedded = &embedetcd.Config{
			Dir:           f.dataDir,
			ClientURL:     scheme + "://" + f.etcdListen,
			PeerURL:       "http://" + f.etcdPeer,
			CertFile:      f.etcdTLSCert,
			KeyFile:       f.etcdTLSKey,
			TrustedCAFile: f.etcdTLSCA,

			QuotaBytes:          f.etcdQuotaBytes,
			CompactionRetention: f.etcdCompactionKeep,
		}
	} else {
		cfg.Etcd.Endpoints = strings.Split(f.etcd, ",")
	}
	return cfg, nil
}

// logger returns the logger of -log-level and -log-format on w.
func (f *serveFlags) logger(w io.Writer) (*slog.Logger, error) {
	level, err := logs.ParseLevel(f.logLevel)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	l, err := logs.New(w, f.logFormat, level)
	if err != nil {
		return nil, fmt.Errorf("-log-format: %w", err)
	}
	return l, nil
}

// dnsUpstreams returns the resolvers of -dns-forward.
func (f *serveFlags) dnsUpstreams() ([]string, error) {
	switch f.dnsForward {
	case "none":
		return nil, nil
	case "":
		if _, port, err := net.SplitHostPort(f.dns); err != nil || port != "53" {
			return nil, nil
		}
		ups, err := stack.ResolvConfUpstreams("/etc/resolv.conf", f.dns)
		if err != nil {
			return nil, fmt.Errorf("-dns-forward: %w", err)
		}
		return ups, nil
	}
	ups, err := stack.ParseUpstreams(f.dnsForward)
	if err != nil {
		return nil, fmt.Errorf("-dns-forward: %w", err)
	}
	return ups, nil
}
