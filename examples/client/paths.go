package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/registrar/api"
)

// checkDNS resolves the service's VIP (A) and instances (SRV, and SRV of the
// named port "http") through NetSel's DNS server.
func checkDNS(ck *checker, c config, svc *api.ServiceView) {
	name := svc.Name + "." + c.zone
	ck.check("DNS A "+name, func(ctx context.Context) (string, error) {
		m, err := query(ctx, c.dns, name, dns.TypeA)
		if err != nil {
			return "", err
		}
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.String() == svc.VIP.String() {
				return fmt.Sprintf("%s (the VIP, ttl %ds)", a.A, a.Hdr.Ttl), nil
			}
		}
		return "", fmt.Errorf("no A record with the VIP %s in %v", svc.VIP, m.Answer)
	})
	for _, qname := range []string{name, "_http._tcp." + name} {
		ck.check("DNS SRV "+qname, func(ctx context.Context) (string, error) {
			m, err := query(ctx, c.dns, qname, dns.TypeSRV)
			if err != nil {
				return "", err
			}
			var targets []string
			for _, rr := range m.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					targets = append(targets, net.JoinHostPort(srv.Target, strconv.Itoa(int(srv.Port))))
				}
			}
			if len(targets) != len(svc.Instances) {
				return "", fmt.Errorf("%d SRV records, the API lists %d instances", len(targets), len(svc.Instances))
			}
			return strings.Join(targets, " "), nil
		})
	}
}

func query(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	r, _, err := new(dns.Client).ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", server, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// checkHTTPProxy sends a request for the service through the HTTP proxy,
// routed by the Host header.
func checkHTTPProxy(ck *checker, c config) {
	host := c.service + "." + strings.TrimSuffix(c.zone, ".")
	ck.check("HTTP via proxy, Host: "+host, func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.httpProxy+"/hello", nil)
		if err != nil {
			return "", err
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "echo from ") {
			return "", fmt.Errorf("%s: %q", resp.Status, strings.TrimSpace(string(body)))
		}
		return strings.TrimSpace(string(body)), nil
	})
}

// checkVIP talks to the service's echo port through its VIP (the layer-4
// proxy), and to its HTTP port the same way.
func checkVIP(ck *checker, svc *api.ServiceView) {
	for _, p := range svc.Ports {
		addr := net.JoinHostPort(svc.VIP.String(), strconv.Itoa(p.Port))
		switch p.Name {
		case "echo":
			ck.check("TCP echo via VIP "+addr, func(ctx context.Context) (string, error) {
				return roundTrip(ctx, addr, "hello netsel\n")
			})
		case "http":
			ck.check("HTTP via VIP "+addr, func(ctx context.Context) (string, error) {
				return roundTrip(ctx, addr, "GET /vip HTTP/1.0\r\nHost: "+svc.Name+"\r\n\r\n")
			})
		}
	}
}

// roundTrip sends msg over a new TCP connection and returns the last line of
// the answer.
func roundTrip(ctx context.Context, addr, msg string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	var last string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
		if strings.HasSuffix(msg, "\n") && !strings.HasPrefix(msg, "GET") {
			break // one line back is the whole echo
		}
	}
	if last == "" {
		return "", fmt.Errorf("no answer: %v", sc.Err())
	}
	return last, nil
}
