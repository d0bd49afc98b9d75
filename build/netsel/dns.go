package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/core/plugin" // bind, errors and the rest of the standard set
	"github.com/miekg/dns"

	_ "github.com/netsel/netsel/plugin" // registers "netsel"
)

// startDNS starts CoreDNS in-process, serving c.DNSZone and the reverse zone
// of c.VIPCIDR on c.DNSAddr from the netsel plugin.
func startDNS(ctx context.Context, c stackConfig) (stop func(), err error) {
	corefile, err := dnsCorefile(c)
	if err != nil {
		return nil, err
	}
	c.Logger.Debug("CoreDNS configuration", "corefile", corefile)
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		return nil, fmt.Errorf("start CoreDNS: %w", err)
	}
	c.Logger.Info("DNS serving", "addr", c.DNSAddr, "zone", dns.Fqdn(c.DNSZone), "reverse", c.VIPCIDR)
	return func() {
		if err := inst.Stop(); err != nil {
			c.Logger.Warn("stopping CoreDNS", "err", err)
		}
		for _, err := range inst.ShutdownCallbacks() {
			c.Logger.Warn("stopping CoreDNS", "err", err)
		}
	}, nil
}

// dnsCorefile returns the Corefile startDNS runs.
func dnsCorefile(c stackConfig) (string, error) {
	host, port, err := net.SplitHostPort(c.DNSAddr)
	if err != nil {
		return "", fmt.Errorf("DNS address %q: %w", c.DNSAddr, err)
	}
	zone := dns.Fqdn(strings.ToLower(c.DNSZone))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return "", fmt.Errorf("DNS zone %q is not a domain name", c.DNSZone)
	}
	keys := []string{zone + ":" + port}
	if c.VIPCIDR.IsValid() {
		keys = append(keys, c.VIPCIDR.Masked().String()+":"+port)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s {\n", strings.Join(keys, " "))
	if host != "" {
		fmt.Fprintf(&b, "    bind %s\n", host)
	}
	b.WriteString("    errors\n    netsel {\n")
	args := []string{}
	for _, ep := range c.EtcdEndpoints {
		q, err := quote(ep)
		if err != nil {
			return "", fmt.Errorf("etcd endpoint: %w", err)
		}
		args = append(args, q)
	}
	fmt.Fprintf(&b, "        endpoint %s\n", strings.Join(args, " "))
	opt := func(name string, vals ...string) error {
		qs := make([]string, len(vals))
		for i, v := range vals {
			q, err := quote(v)
			if err != nil {
				return fmt.Errorf("etcd %s: %w", name, err)
			}
			qs[i] = q
		}
		fmt.Fprintf(&b, "        %s %s\n", name, strings.Join(qs, " "))
		return nil
	}
	if err := opt("prefix", c.Keyspace.Prefix()); err != nil {
		return "", err
	}
	if user, password := c.readerCredentials(); user != "" {
		if err := opt("credentials", user, password); err != nil {
			return "", err
		}
	}
	var tlsArgs []string
	if c.EtcdCertFile != "" || c.EtcdKeyFile != "" {
		tlsArgs = append(tlsArgs, c.EtcdCertFile, c.EtcdKeyFile)
	}
	if c.EtcdCAFile != "" {
		tlsArgs = append(tlsArgs, c.EtcdCAFile)
	}
	if len(tlsArgs) > 0 {
		if err := opt("tls", tlsArgs...); err != nil {
			return "", err
		}
	}
	b.WriteString("    }\n}\n")
	return b.String(), nil
}

// quote makes s one Corefile token.
func quote(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "\n\r") {
		return "", fmt.Errorf("%q cannot be put in a Corefile", s)
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`, nil
}
