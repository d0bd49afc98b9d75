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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/registrar"
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
	stopTimeout time.Duration

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
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	return runStack(ctx, f, logger)
}

// runStack starts every part, waits for ctx to end, then stops them in reverse order.
func runStack(ctx context.Context, f serveFlags, logger *slog.Logger) error {
	ks, err := catalog.NewKeyspace(f.prefix)
	if err != nil {
		return fmt.Errorf("-prefix: %w", err)
	}
	cidr, err := netip.ParsePrefix(f.vipCIDR)
	if err != nil {
		return fmt.Errorf("-vip-cidr: %w", err)
	}
	if err := f.checkTLS(); err != nil {
		return err
	}
	policy, err := f.addrPolicy(ctx)
	if err != nil {
		return err
	}
	budget, err := f.limits.plan(logger)
	if err != nil {
		return err
	}
	cfg := stackConfig{
		AddrPolicy:    policy,
		ReservedAddrs: f.reservedAddrs(),
		Keyspace:      ks,
		RegistrarAddr: f.registrar,
		VIPCIDR:       cidr.Masked(),
		DNSAddr:       f.dns,
		DNSZone:       f.zone,
		HTTPAddr:      f.http,
		VIPProxy:      f.vipProxy,
		Logger:        logger,
		EtcdUsername:  f.etcdUser,
		EtcdPassword:  os.Getenv("NETSEL_ETCD_PASSWORD"),
		EtcdCertFile:  f.etcdCert,
		EtcdKeyFile:   f.etcdKey,
		EtcdCAFile:    f.etcdCA,
		Budget:        budget,
		VIPLimits:     f.limits.vipProxyLimits(budget),

		ReaderUsername: f.etcdReaderUser,
		ReaderPassword: os.Getenv("NETSEL_ETCD_READER_PASSWORD"),
	}

	var stops []func()
	defer func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
		}()
		select {
		case <-done:
			logger.Info("netsel stopped")
		case <-time.After(f.stopTimeout):
			logger.Error("graceful shutdown took too long; exiting", "stop_timeout", f.stopTimeout)
		}
	}()

	if f.etcd == "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return fmt.Errorf("etcd data directory: %w", err)
		}
		scheme := "http"
		if f.etcdTLSCert != "" {
			scheme = "https"
			f.embeddedEtcdClientTLS(&cfg)
		}
		logger.Info("starting embedded etcd", "client", scheme+"://"+f.etcdListen, "data", f.dataDir,
			"client_cert_auth", f.etcdTLSCA != "")
		srv, err := embedetcd.Start(ctx, embedetcd.Config{
			Dir:           f.dataDir,
			ClientURL:     scheme + "://" + f.etcdListen,
			PeerURL:       "http://" + f.etcdPeer,
			CertFile:      f.etcdTLSCert,
			KeyFile:       f.etcdTLSKey,
			TrustedCAFile: f.etcdTLSCA,

			QuotaBytes:          f.etcdQuotaBytes,
			CompactionRetention: f.etcdCompactionKeep,
			Logger:              logger,
		})
		if err != nil {
			return err
		}
		stops = append(stops, srv.Close)
		cfg.EtcdEndpoints = []string{srv.ClientURL()}
		if f.etcdUser == "" && f.etcdTLSCA == "" {
			// Without credentials of any kind (user or client
			// certificate) to lose, the registrar may skip gRPC.
			cfg.Etcd, cfg.EtcdLease = inProcessEtcd(ctx, srv, logger)
		}
	} else {
		cfg.EtcdEndpoints = strings.Split(f.etcd, ",")
		logger.Info("using external etcd", "endpoints", cfg.EtcdEndpoints)
	}

	if cfg.Etcd == nil {
		client, err := newEtcdClient(cfg)
		if err != nil {
			return err
		}
		cfg.Etcd = client
	}
	stops = append(stops, func() { cfg.Etcd.Close() })

	stopRegistrar, err := startRegistrar(ctx, cfg, f)
	if err != nil {
		return err
	}
	stops = append(stops, stopRegistrar)
	if cfg.DNSAddr != "" {
		s, err := startDNS(ctx, cfg)
		if err != nil {
			return fmt.Errorf("DNS: %w", err)
		}
		stops = append(stops, s)
	}
	if cfg.HTTPAddr != "" || cfg.VIPProxy {
		s, err := startProxies(ctx, cfg)
		if err != nil {
			return fmt.Errorf("proxies: %w", err)
		}
		stops = append(stops, s)
	}
	logger.Info("netsel ready", "registrar", f.registrarURL(), "dns", cfg.DNSAddr, "http_proxy", cfg.HTTPAddr, "vip_cidr", cfg.VIPCIDR)
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// inProcessEtcd returns a client and lease API that call the embedded etcd
// directly, with no gRPC or socket in between, for the registrar: nil when
// etcd authentication is on (the in-process client carries no credentials)
// or its state cannot be read, and the parts then dial srv as any client.
// Authentication turned on while the runner runs takes a restart with
// -etcd-user to follow.
func inProcessEtcd(ctx context.Context, srv *embedetcd.Server, logger *slog.Logger) (*clientv3.Client, pb.LeaseClient) {
	c := srv.InProcessClient()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.AuthStatus(ctx)
	if err != nil || st.Enabled {
		c.Close()
		logger.Info("the registrar reaches the embedded etcd over its client URL", "auth_enabled", err == nil && st.Enabled, "err", err)
		return nil, nil
	}
	logger.Info("the registrar calls the embedded etcd in-process")
	return c, srv.InProcessLeaseClient()
}

func newEtcdClient(c stackConfig) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:   c.EtcdEndpoints,
		DialTimeout: 5 * time.Second,
		Username:    c.EtcdUsername,
		Password:    c.EtcdPassword,
	}
	tlsCfg, err := etcdTLS(c)
	if err != nil {
		return nil, err
	}
	cc.TLS = tlsCfg
	client, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", c.EtcdEndpoints, err)
	}
	return client, nil
}

// startRegistrar starts the registrar on c.RegistrarAddr with the token
// file and TLS of f, reloading both on SIGHUP.
func startRegistrar(ctx context.Context, c stackConfig, f serveFlags) (func(), error) {
	log := c.Logger.With("part", "registrar")
	r, err := registrar.New(ctx, registrar.Config{
		Client:          c.Etcd,
		LeaseClient:     c.EtcdLease,
		Keyspace:        c.Keyspace,
		VIPCIDR:         c.VIPCIDR,
		TokenFile:       f.tokenFile,
		AuthReads:       f.authReads,
		TLSCertFile:     f.tlsCert,
		TLSKeyFile:      f.tlsKey,
		TLSClientCAFile: f.tlsClientCA,
		Logger:          log,
		AddrPolicy:      c.AddrPolicy,
		Limits:          f.limits.registrarLimits(c.Budget),
	})
	if err != nil {
		return nil, fmt.Errorf("registrar: %w", err)
	}
	ln, err := net.Listen("tcp", c.RegistrarAddr)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("registrar: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Serve(sctx, ln); err != nil {
			c.Logger.Error("registrar stopped", "err", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the token file and TLS certificate")
				if err := r.Reload(); err != nil {
					log.Error("reload failed; the previous settings stay in force", "err", err)
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
		<-reloaded
		r.Close()
	}, nil
}
