package multihost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// vipCIDR is the VIP range of every agent: outside 127/8, made local on
// each host by its agent.
const vipCIDR = "198.19.0.0/16"

// Agents' listen addresses inside each host: the registrar on the host's
// address (other hosts' services fail over to it), DNS and the HTTP proxy
// on the host's loopback, for its own clients.
const (
	registrarPort = 9000
	dnsAddr       = "127.0.0.1:5353"
	httpAddr      = "127.0.0.1:8081"
)

// cluster is the README's "Many hosts" set-up on test hosts.
type cluster struct {
	t      *testing.T
	net    *testenv.Net
	etcd   *testenv.EtcdCluster
	agents []*testenv.HostProcess
}

// startCluster starts n hosts, an etcd member on each of the first three,
// and an agent on every host, and waits until every agent is ready.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	nt := testenv.StartHosts(t, n)
	c := &cluster{t: t, net: nt, etcd: testenv.StartEtcdOnHosts(t, nt.Hosts[:3])}
	for i := range nt.Hosts {
		c.agents = append(c.agents, c.startAgent(i))
	}
	for i := range nt.Hosts {
		c.waitAgent(i)
	}
	return c
}

func (c *cluster) host(i int) *testenv.Host { return c.net.Hosts[i] }

// registrarURL is the URL of host i's registrar.
func (c *cluster) registrarURL(i int) string {
	return "http://" + netip.AddrPortFrom(c.host(i).Addr(), registrarPort).String()
}

func (c *cluster) startAgent(i int) *testenv.HostProcess {
	return c.host(i).Start(c.t, bin.netsel, "agent",
		"-etcd", strings.Join(c.etcd.Endpoints(), ","),
		"-registrar", netip.AddrPortFrom(c.host(i).Addr(), registrarPort).String(),
		"-dns", dnsAddr, "-http", httpAddr, "-vip-cidr", vipCIDR,
		"-log-level", "debug", "-stop-timeout", "10s")
}

// waitAgent waits until host i's agent logs it is ready.
func (c *cluster) waitAgent(i int) {
	c.t.Helper()
	a := c.agents[i]
	testenv.Eventually(c.t, 60*time.Second, func() bool {
		if !a.Running() {
			c.t.Fatalf("agent on host %d exited: %v\n%s", i, a.State(), a.Log())
		}
		return strings.Contains(a.Log(), "netsel ready")
	}, "agent on host %d not ready", i)
}

// startService runs examples/service as service name on host i, listening
// on the host's address, heartbeating to the registrars of hosts regs (the
// first first).
func (c *cluster) startService(i int, name, id string, ttl time.Duration, regs ...int) *testenv.HostProcess {
	urls := make([]string, len(regs))
	for k, r := range regs {
		urls[k] = c.registrarURL(r)
	}
	return c.host(i).Start(c.t, bin.service, "-name", name, "-id", id, "-host", c.host(i).Addr().String(),
		"-registrar", strings.Join(urls, ","), "-ttl", ttl.String(), "-interval", (ttl / 4).String())
}

// service reads service name from host i's registrar.
func (c *cluster) service(ctx context.Context, i int, name string) (*api.ServiceView, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.registrarURL(i)+"/v1/services/"+name, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.host(i).HTTPClient().Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var v api.ServiceView
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, resp.StatusCode, err
	}
	return &v, resp.StatusCode, nil
}

// query asks host i's DNS server, from inside host i.
func (c *cluster) query(ctx context.Context, i int, name string, qtype uint16) (*dns.Msg, error) {
	return queryOn(ctx, c.host(i), dnsAddr, name, qtype)
}

// queryOn asks the DNS server at server (IP:port) over UDP from inside h.
func queryOn(ctx context.Context, h *testenv.Host, server, name string, qtype uint16) (*dns.Msg, error) {
	conn, err := h.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	dc := &dns.Conn{Conn: conn}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
	}
	if err := dc.WriteMsg(m); err != nil {
		return nil, err
	}
	return dc.ReadMsg()
}

// srvTargets returns host i's SRV answer for name as "addr:port" targets,
// with the addresses of the additional section.
func (c *cluster) srvTargets(ctx context.Context, i int, name string) ([]string, error) {
	m, err := c.query(ctx, i, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for _, rr := range m.Extra {
		if a, ok := rr.(*dns.A); ok {
			addrs[a.Hdr.Name] = a.A.String()
		}
	}
	var out []string
	for _, rr := range m.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			out = append(out, fmt.Sprintf("%s:%d", addrs[s.Target], s.Port))
		}
	}
	return out, nil
}

// httpVia sends GET / for service name through host i's HTTP proxy and
// returns the body: "echo from <id>: ...".
func (c *cluster) httpVia(ctx context.Context, i int, name string) (string, error) {
	return c.get(ctx, i, "http://"+httpAddr+"/", name+".netsel")
}

// httpViaVIP sends GET / to vip:port from inside host i (its agent's VIP
// proxy), on a new connection each time, and returns the body.
func (c *cluster) httpViaVIP(ctx context.Context, i int, vip netip.AddrPort) (string, error) {
	return c.get(ctx, i, "http://"+vip.String()+"/", "")
}

// get sends GET url with Host host (when set) from inside host i, on a new
// connection, and returns the body of a 200.
func (c *cluster) get(ctx context.Context, i int, url, host string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	req.Close = true
	resp, err := c.host(i).HTTPClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), nil
}

// answeredBy returns the instance id of an echo body.
func answeredBy(body string) string {
	rest, ok := strings.CutPrefix(body, "echo from ")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

// post sends body as JSON to path of host i's registrar, from inside host
// i, and returns the answer's status and body.
func (c *cluster) post(ctx context.Context, i int, path, body string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.registrarURL(i)+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.host(i).HTTPClient().Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
