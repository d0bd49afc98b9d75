package stack

import (
	"fmt"
	"net"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // bind, errors, log, cache, forward and the rest of the standard set
	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/logs"
	_ "github.com/netsel/netsel/plugin" // registers "netsel"
)

// startDNS starts CoreDNS in-process, serving the zone and the reverse zone
// of the VIP range from the netsel plugin, and forwarding other names when
// the config has upstreams.
func startDNS(c *Config) (stop func(), err error) {
	corefile, err := Corefile(c)
	if err != nil {
		return nil, err
	}
	log := logs.Part(c.Logger, "dns")
	log.Debug("CoreDNS configuration", "corefile", corefile)
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		if inst != nil {
			// The plugin's set-up may have opened its etcd client.
			inst.ShutdownCallbacks()
		}
		return nil, fmt.Errorf("start CoreDNS: %w", err)
	}
	log.Info("DNS serving", "addr", c.DNS.Addr, "zone", dns.Fqdn(c.DNS.Zone), "reverse", c.VIPCIDR, "forward", c.DNS.Forward)
	return func() {
		if err := inst.Stop(); err != nil {
			log.Warn("stopping CoreDNS", "err", err)
		}
		for _, err := range inst.ShutdownCallbacks() {
			log.Warn("stopping CoreDNS", "err", err)
		}
	}, nil
}

// Corefile returns the Corefile of c's DNS part: the zone and the VIP
// range's reverse zone from etcd, and, with upstreams, every other name
// forwarded through a cache.
func Corefile(c *Config) (string, error) {
	d := c.DNS
	host, port, err := net.SplitHostPort(d.Addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", d.Addr, err)
	}
	zone := dns.Fqdn(strings.ToLower(d.Zone))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return "", fmt.Errorf("zone %q is not a domain name", d.Zone)
	}
	keys := []string{zone + ":" + port}
	if c.VIPCIDR.IsValid() {
		keys = append(keys, c.VIPCIDR.Masked().String()+":"+port)
	}
	var b strings.Builder
	common := func() {
		if host != "" {
			fmt.Fprintf(&b, "    bind %s\n", host)
		}
		b.WriteString("    errors\n")
		if d.QueryLog {
			b.WriteString("    log\n")
		}
	}
	fmt.Fprintf(&b, "%s {\n", strings.Join(keys, " "))
	common()
	b.WriteString("    netsel {\n")
	if err := netselOptions(&b, c); err != nil {
		return "", err
	}
	b.WriteString("    }\n}\n")
	if len(d.Forward) > 0 {
		ups := make([]string, len(d.Forward))
		for i, u := range d.Forward {
			q, err := quote(u)
			if err != nil {
				return "", fmt.Errorf("upstream: %w", err)
			}
			ups[i] = q
		}
		fmt.Fprintf(&b, ".:%s {\n", port)
		common()
		fmt.Fprintf(&b, "    cache\n    forward . %s\n}\n", strings.Join(ups, " "))
	}
	return b.String(), nil
}

// netselOptions writes the netsel plugin's options: etcd as a reader.
func netselOptions(b *strings.Builder, c *Config) error {
	opt := func(name string, vals ...string) error {
		qs := make([]string, len(vals))
		for i, v := range vals {
			q, err := quote(v)
			if err != nil {
				return fmt.Errorf("etcd %s: %w", name, err)
			}
			qs[i] = q
		}
		fmt.Fprintf(b, "        %s %s\n", name, strings.Join(qs, " "))
		return nil
	}
	if err := opt("endpoint", c.Etcd.Endpoints...); err != nil {
		return err
	}
	if err := opt("prefix", c.Keyspace.Prefix()); err != nil {
		return err
	}
	if c.Locality != "" {
		if err := opt("locality", c.Locality); err != nil {
			return err
		}
	}
	if user, password := c.Etcd.reader(); user != "" {
		if err := opt("credentials", user, password); err != nil {
			return err
		}
	}
	var tlsArgs []string
	if c.Etcd.CertFile != "" || c.Etcd.KeyFile != "" {
		tlsArgs = append(tlsArgs, c.Etcd.CertFile, c.Etcd.KeyFile)
	}
	if c.Etcd.CAFile != "" {
		tlsArgs = append(tlsArgs, c.Etcd.CAFile)
	}
	if len(tlsArgs) > 0 {
		return opt("tls", tlsArgs...)
	}
	return nil
}

// quote makes s one Corefile token.
func quote(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "\n\r") {
		return "", fmt.Errorf("%q cannot be put in a Corefile", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`, nil
}
