package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/logs"
	"github.com/netsel/netsel/internal/stack"
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

	// The instance address policy.
	allowCIDR      string
	denyCIDR       string
	limits         limitFlags
	etcdReaderUser string
	// The embedded etcd's space management.
	etcdQuotaBytes     int64
	etcdCompactionKeep time.Duration
}

func defaultDataDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "netsel", "etcd")
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory of the embedded etcd's data")
	fs.StringVar(&f.etcd, "etcd", "", "comma-separated client URLs of an external etcd cluster; empty runs etcd embedded")
	fs.StringVar(&f.etcdListen, "etcd-listen", "127.0.0.1:2379", "client address of the embedded etcd")
	fs.StringVar(&f.etcdPeer, "etcd-peer", "127.0.0.1:2380", "peer address of the embedded etcd")
	fs.StringVar(&f.etcdCert, "etcd-cert", "", "client certificate the runner's parts present to etcd (TLS)")
	fs.StringVar(&f.etcdKey, "etcd-key", "", "key of -etcd-cert")
	fs.StringVar(&f.etcdCA, "etcd-ca", "", "CA bundle that signed etcd's certificate (embedded etcd: defaults to -etcd-tls-ca)")
	fs.StringVar(&f.etcdUser, "etcd-user", "", "etcd username; the password is read from $NETSEL_ETCD_PASSWORD")
	fs.StringVar(&f.etcdTLSCert, "etcd-tls-cert", "", "serve the embedded etcd over HTTPS with this certificate (PEM)")
	fs.StringVar(&f.etcdTLSKey, "etcd-tls-key", "", "key of -etcd-tls-cert")
	fs.StringVar(&f.etcdTLSCA, "etcd-tls-ca", "", "CA of the embedded etcd's clients: it then requires client certificates, and the runner's parts trust this CA and present -etcd-cert (default: -etcd-tls-cert)")
	fs.StringVar(&f.prefix, "prefix", catalog.DefaultPrefix, "etcd key prefix shared by every part")
	fs.StringVar(&f.registrar, "registrar", "127.0.0.1:9000", "registrar REST API listen address")
	fs.StringVar(&f.vipCIDR, "vip-cidr", "127.77.0.0/16", "range virtual IPs are allocated from")
	fs.StringVar(&f.tokenFile, "token-file", "", "file of scoped bearer tokens, each of 16 characters or more; when set, registrar writes require one (reloaded on SIGHUP; an invalid file is refused, naming the line)")
	fs.BoolVar(&f.authReads, "auth-reads", false, "registrar reads require a token too (needs -token-file)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the registrar over HTTPS with this certificate (PEM; reloaded on SIGHUP)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "key of -tls-cert")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require registrar clients to present a certificate signed by this CA (mutual TLS)")
	fs.StringVar(&f.dns, "dns", "127.0.0.1:5353", "DNS listen address (UDP and TCP); empty disables DNS")
	fs.StringVar(&f.zone, "zone", "netsel.", "DNS zone services are answered in; the HTTP proxy routes only Hosts <service>.<zone> (others get 404)")
	fs.StringVar(&f.http, "http", "127.0.0.1:8081", "HTTP proxy listen address; empty disables it")
	fs.BoolVar(&f.vipProxy, "vip-proxy", true, "proxy TCP on every service's VIP:port")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level of every part: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format of every part: text (logfmt) or json; one record a line, part= names the part")
	fs.StringVar(&f.dnsForward, "dns-forward", "", "comma-separated upstream resolvers (IP or IP:port) of names outside the zone, through a cache; \"none\" refuses them.\nDefault: none, or the nameservers of /etc/resolv.conf (except this server) when -dns is on port 53")
	fs.BoolVar(&f.dnsQueryLog, "dns-query-log", false, "log every DNS query (CoreDNS's log plugin), at info")
	fs.BoolVar(&f.httpAccessLog, "http-access-log", false, "log every request to the HTTP proxy (Caddy's access log), at info")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "how long a graceful shutdown may take")

	fs.StringVar(&f.allowCIDR, "allow-cidr", "", "comma-separated CIDRs (or addresses) instances may be at; empty allows every address not refused otherwise.\nAlways refused: unspecified, broadcast, multicast, link-local, the -vip-cidr range (IPv4-mapped forms too)\nand every address:port this process listens on (registrar, DNS, HTTP proxy, etcd client and peer, -etcd endpoints)")
	fs.StringVar(&f.denyCIDR, "deny-cidr", "", "comma-separated CIDRs (or addresses) instances may never be at; empty denies nothing beyond what -allow-cidr says is always refused")
	f.limits.register(fs)
	fs.StringVar(&f.etcdReaderUser, "etcd-reader-user", "", "etcd username of the DNS server and the proxies, which only read (a read-only role on -prefix); the password is read from $NETSEL_ETCD_READER_PASSWORD (default: -etcd-user)")
	fs.Int64Var(&f.etcdQuotaBytes, "etcd-quota-bytes", embedetcd.DefaultQuotaBytes, "space quota of the embedded etcd's database in bytes; when it is full, the runner compacts, defragments and disarms etcd's NOSPACE alarm by itself")
	fs.DurationVar(&f.etcdCompactionKeep, "etcd-compaction-retention", embedetcd.DefaultCompactionRetention, "history the embedded etcd keeps (periodic auto-compaction)")
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("netsel serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: netsel [serve] [flags]\n\nRuns NetSel on this machine: etcd (embedded unless -etcd is given), the registrar,\nthe DNS server and the HTTP and VIP proxies, all on loopback by default.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "netsel serve: unexpected argument %q\n", fs.Arg(0))
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
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		return err
	}
	logger.Info("netsel ready", "registrar", f.registrarURL(), "dns", f.dns, "http_proxy", f.http, "vip_cidr", cfg.VIPCIDR)
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
	if err := f.checkTLS(); err != nil {
		return stack.Config{}, err
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
		Registrar: &stack.Registrar{
			Addr:            f.registrar,
			TokenFile:       f.tokenFile,
			AuthReads:       f.authReads,
			TLSCertFile:     f.tlsCert,
			TLSKeyFile:      f.tlsKey,
			TLSClientCAFile: f.tlsClientCA,
			Limits:          f.limits.registrarLimits(budget),
		},
		AddrPolicy:    policy,
		ReservedAddrs: f.reservedAddrs(),
		Logger:        logger,
		LogLevel:      level,
		StopTimeout:   f.stopTimeout,
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
