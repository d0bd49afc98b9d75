package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/netsel/netsel/catalog"
)

// maxBody is the most of an HTTP check's answer read: the start of the
// body goes in the output.
const maxBody = 4 << 10

// userAgent identifies probes in the checked instances' logs.
const userAgent = "netsel-check/1"

// prober runs probes. One prober (and one HTTP transport) serves every
// check of a registrar. Probes dial only addresses the registrar's address
// policy allows, and open a new connection each (no keep-alive): a
// registrar checking 10,000 instances holds no idle connection to them.
type prober struct {
	allow  func(netip.AddrPort) error
	dialer net.Dialer
	http   *http.Transport
}

func newProber(allow func(netip.AddrPort) error) *prober {
	p := &prober{allow: allow}
	p.http = &http.Transport{
		DialContext:        p.dial,
		DisableKeepAlives:  true,
		DisableCompression: true,
		// A probe's context bounds its time.
		MaxResponseHeaderBytes: 16 << 10,
	}
	return p
}

// dial connects to address ("ip:port") if the address policy allows it.
func (p *prober) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: not an address:port", address)
	}
	if p.allow != nil {
		if err := p.allow(ap); err != nil {
			return nil, fmt.Errorf("dial %s: refused by the address policy: %w", address, err)
		}
	}
	return p.dialer.DialContext(ctx, network, address)
}

// probe runs one probe of t within its timeout.
func (p *prober) probe(ctx context.Context, t *target) result {
	ctx, cancel := context.WithTimeout(ctx, t.check.Timeout)
	defer cancel()
	switch t.check.Type {
	case catalog.CheckHTTP:
		return p.probeHTTP(ctx, t)
	case catalog.CheckGRPC:
		return p.probeGRPC(ctx, t)
	}
	return p.probeTCP(ctx, t)
}

func (p *prober) probeTCP(ctx context.Context, t *target) result {
	c, err := p.dial(ctx, "tcp", t.addr.String())
	if err != nil {
		return failed(ctx, "TCP connect "+t.addr.String(), err, t.check.Timeout)
	}
	c.Close()
	return result{status: pass, output: "TCP connect " + t.addr.String() + ": success"}
}

// probeHTTP GETs t's URL: 2xx passes, 429 warns, anything else fails.
// Redirects are not followed (the transport does not).
func (p *prober) probeHTTP(ctx context.Context, t *target) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return result{status: fail, output: err.Error()}
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.http.RoundTrip(req)
	if err != nil {
		return failed(ctx, "HTTP GET "+t.url, err, t.check.Timeout)
	}
	defer resp.Body.Close()
	var body [512]byte
	n, _ := io.ReadFull(io.LimitReader(resp.Body, maxBody), body[:])
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody-int64(n)))
	out := "HTTP GET " + t.url + ": " + resp.Status
	if s := strings.TrimSpace(string(body[:n])); s != "" {
		out += " Output: " + s
	}
	r := result{status: fail, output: out}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		r.status = pass
	case resp.StatusCode == http.StatusTooManyRequests:
		r.status = warn
	}
	return r
}

// probeGRPC asks the standard health service (grpc.health.v1) of t's
// address, over plain text, for t's service: SERVING passes. Each probe
// opens its own connection, closed at once.
func (p *prober) probeGRPC(ctx context.Context, t *target) result {
	conn, err := grpc.NewClient("passthrough:///"+t.addr.String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return p.dial(ctx, "tcp", a) }),
		grpc.WithUserAgent(userAgent))
	if err != nil {
		return result{status: fail, output: err.Error()}
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: t.check.Service})
	if err != nil {
		return failed(ctx, "gRPC health "+t.addr.String(), err, t.check.Timeout)
	}
	out := fmt.Sprintf("gRPC health %s %q: %s", t.addr, t.check.Service, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return result{status: fail, output: out}
	}
	return result{status: pass, output: out}
}

// failed is the result of a probe (what) that got no answer.
func failed(ctx context.Context, what string, err error, timeout time.Duration) result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return result{status: fail, output: fmt.Sprintf("%s: no answer within the %v timeout", what, timeout)}
	}
	if strings.HasPrefix(err.Error(), "dial ") {
		return result{status: fail, output: err.Error()}
	}
	return result{status: fail, output: what + ": " + err.Error()}
}

// clip makes s fit catalog.MaxCheckOutput bytes of valid UTF-8.
func clip(s string) string {
	if len(s) > catalog.MaxCheckOutput {
		s = s[:catalog.MaxCheckOutput]
	}
	return strings.ToValidUTF8(s, "")
}
