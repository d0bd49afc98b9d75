package main

import (
	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/registrar/checks"
)

func defaultDataDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "netsel", "etcd")
}

// register defines the flags of "netsel serve", or of "netsel agent"
// when f.agent is set: no embedded etcd, -etcd required, -advertise.
func (f *serveFlags) register(fs *flag.FlagSet) {
	if f.agent {
		fs.StringVar(&f.etcd, "etcd", "", "comma-separated client URLs of the etcd cluster (required)")
		fs.StringVar(&f.advertise, "advertise", "", "the address other hosts reach this host at: the address registered for an instance of this host that gives none;\nthe registrar refuses loopback instance addresses (default: the source address of the route to the first -etcd endpoint)")
	} else {
		fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory of the embedded etcd's data")
		fs.StringVar(&f.etcd, "etcd", "", "comma-separated client URLs of an external etcd cluster; empty runs etcd embedded")
		fs.StringVar(&f.etcdListen, "etcd-listen", "127.0.0.1:2379", "client address of the embedded etcd")
		fs.StringVar(&f.etcdPeer, "etcd-peer", "127.0.0.1:2380", "peer address of the embedded etcd")
	}
	fs.StringVar(&f.etcdCert, "etcd-cert", "", "client certificate the runner's parts present to etcd (TLS)")
	fs.StringVar(&f.etcdKey, "etcd-key", "", "key of -etcd-cert")
	fs.StringVar(&f.etcdCA, "etcd-ca", "", "CA bundle that signed etcd's certificate (embedded etcd: defaults to -etcd-tls-ca)")
	fs.StringVar(&f.etcdUser, "etcd-user", "", "etcd username; the password is read from $NETSEL_ETCD_PASSWORD")
	if !f.agent {
		fs.StringVar(&f.etcdTLSCert, "etcd-tls-cert", "", "serve the embedded etcd over HTTPS with this certificate (PEM)")
		fs.StringVar(&f.etcdTLSKey, "etcd-tls-key", "", "key of -etcd-tls-cert")
		fs.StringVar(&f.etcdTLSCA, "etcd-tls-ca", "", "CA of the embedded etcd's clients: it then requires client certificates, and the runner's parts trust this CA and present -etcd-cert (default: -etcd-tls-cert)")
	}
	fs.StringVar(&f.prefix, "prefix", catalog.DefaultPrefix, "etcd key prefix shared by every part")
	fs.StringVar(&f.registrar, "registrar", "127.0.0.1:9000", "registrar REST API listen address; empty runs no registrar")
	fs.StringVar(&f.vipCIDR, "vip-cidr", "127.77.0.0/16", "range virtual IPs are allocated from, the same on every host; outside 127/8 the range is made local to the host\n(ip route add local CIDR dev lo) while NetSel runs")
	fs.StringVar(&f.tokenFile, "token-file", "", "file of scoped bearer tokens, each of 16 characters or more; when set, registrar writes require one (reloaded on SIGHUP; an invalid file is refused, naming the line)")
	fs.BoolVar(&f.authReads, "auth-reads", false, "registrar reads require a token too (needs -token-file)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the registrar over HTTPS with this certificate (PEM; reloaded on SIGHUP)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "key of -tls-cert")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "require registrar clients to present a certificate signed by this CA (mutual TLS)")
	fs.StringVar(&f.auditLog, "audit-log", "", "append one JSON line per registrar write request (who, from where, what, the answer) to this file, created 0600; \"-\" or \"stderr\": standard error")
	fs.BoolVar(&f.auditBeats, "audit-heartbeats", false, "put heartbeats in the -audit-log too")
	fs.StringVar(&f.dns, "dns", "127.0.0.1:5353", "DNS listen address (UDP and TCP); empty disables DNS")
	fs.StringVar(&f.zone, "zone", "netsel.", "DNS zone services are answered in; the HTTP proxy routes only Hosts <service>.<zone> (others get 404)")
	fs.StringVar(&f.http, "http", "127.0.0.1:8081", "HTTP proxy listen address; empty disables it")
	fs.BoolVar(&f.vipProxy, "vip-proxy", true, "proxy TCP on every service's VIP:port")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level of every part: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format of every part: text (logfmt) or json; one record a line, part= names the part")
	fs.StringVar(&f.dnsForward, "dns-forward", "", "comma-separated upstream resolvers (IP or IP:port) of names outside the zone, through a cache; \"none\" refuses them.\nDefault: none, or the nameservers of /etc/resolv.conf (except this server) when -dns is on port 53")
	fs.BoolVar(&f.dnsQueryLog, "dns-query-log", false, "log every DNS query (CoreDNS's log plugin), at info")
	fs.BoolVar(&f.httpAccessLog, "http-access-log", false, "log every request to the HTTP proxy (Caddy's access log), at info")
	fs.StringVar(&f.httpTagsHeader, "http-tags-header", "", "request header (e.g. X-Netsel-Tag) whose tags, comma-separated, narrow the HTTP proxy's instances to those carrying all of them; empty: off (a client could pick instances)")
	fs.StringVar(&f.locality, "locality", "", "instance zone this host is in (the \"zone\" instances register with; not -zone, the DNS zone): SRV answers give its instances\npriority 10 and the others 20, and the HTTP and VIP proxies use only its serving instances while there is any; empty: none")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "how long a graceful shutdown may take")

	fs.StringVar(&f.allowCIDR, "allow-cidr", "", "comma-separated CIDRs (or addresses) instances may be at; empty allows every address not refused otherwise.\nAlways refused: unspecified, broadcast, multicast, link-local, the -vip-cidr range (IPv4-mapped forms too)\nand every address:port this process listens on (registrar, DNS, HTTP proxy, etcd client and peer, -etcd endpoints)")
	fs.StringVar(&f.denyCIDR, "deny-cidr", "", "comma-separated CIDRs (or addresses) instances may never be at; empty denies nothing beyond what -allow-cidr says is always refused")
	f.limits.register(fs)
	fs.BoolVar(&f.checks, "checks", true, "run instances' health checks, shared with the other registrars on this etcd (false: hold no membership key; the others check everything)")
	fs.StringVar(&f.memberID, "member-id", "", "this registrar's id among the registrars sharing health checks, a DNS label unique among them (default: host name and a random suffix)")
	fs.DurationVar(&f.memberTTL, "member-ttl", checks.DefaultMemberTTL, "TTL of the registrar's membership lease (whole seconds, at least 2s): when it dies, the others take its health checks over this long after its last renewal")
	fs.IntVar(&f.checksMaxProbes, "checks-max-probes", checks.DefaultMaxConcurrent, "health check probes the registrar runs at once; probes due beyond it wait")
	fs.StringVar(&f.etcdReaderUser, "etcd-reader-user", "", "etcd username of the DNS server and the proxies, which only read (a read-only role on -prefix); the password is read from $NETSEL_ETCD_READER_PASSWORD (default: -etcd-user)")
	if !f.agent {
		fs.Int64Var(&f.etcdQuotaBytes, "etcd-quota-bytes", embedetcd.DefaultQuotaBytes, "space quota of the embedded etcd's database in bytes; when it is full, the runner compacts, defragments and disarms etcd's NOSPACE alarm by itself")
		fs.DurationVar(&f.etcdCompactionKeep, "etcd-compaction-retention", embedetcd.DefaultCompactionRetention, "history the embedded etcd keeps (periodic auto-compaction)")
	}
}
