package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// runner is the NetSel runner binary (build/netsel) as a subprocess:
// registrar, DNS server, HTTP proxy and VIP proxy in one process, over the
// soak's etcd cluster.
type runner struct {
	bin     string
	args    []string
	regURL  string
	dnsAddr string
	httpURL string
	child
	starts int
}

func newRunner(bin, logPath string, etcdURLs []string, vipCIDR string) (*runner, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	r := &runner{
		bin:     bin,
		child:   child{logPath: logPath},
		regURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		dnsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
	}
	r.args = []string{
		"-etcd", strings.Join(etcdURLs, ","),
		"-registrar", strings.TrimPrefix(r.regURL, "http://"),
		"-dns", r.dnsAddr,
		"-http", strings.TrimPrefix(r.httpURL, "http://"),
		"-vip-proxy",
		"-vip-cidr", vipCIDR,
		"-log-level", "warn",
		// The fleet registers from one IP at -register-rate: not one client.
		"-register-rate", "-1",
	}
	return r, nil
}

// start launches the runner; its output is appended to logPath.
func (r *runner) start() error {
	r.starts++
	header := fmt.Sprintf("---- soak: runner start #%d at %s", r.starts, time.Now().Format(time.RFC3339Nano))
	if err := r.launch(r.bin, r.args, header); err != nil {
		return fmt.Errorf("start runner: %w", err)
	}
	return nil
}

// waitReady waits until the registrar answers /v1/health with 200 and the
// DNS server answers an A query for probe (a name in the zone) with
// NOERROR; it returns how long each took from since.
func (r *runner) waitReady(ctx context.Context, probe string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	regOK, dnsOK := false, false
	for !regOK || !dnsOK {
		if !r.running() {
			return fmt.Errorf("runner exited (%v); see %s", r.exitState(), r.logPath)
		}
		if !regOK {
			if resp, err := hc.Get(r.regURL + "/v1/health"); err == nil {
				resp.Body.Close()
				regOK = resp.StatusCode == http.StatusOK
			}
		}
		if !dnsOK {
			m := new(dns.Msg).SetQuestion(probe, dns.TypeA)
			c := &dns.Client{Timeout: time.Second}
			if in, _, err := c.ExchangeContext(ctx, m, r.dnsAddr); err == nil && in.Rcode != dns.RcodeServerFailure && in.Rcode != dns.RcodeRefused {
				dnsOK = true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("runner not ready after %v (registrar ok %v, dns ok %v); see %s", timeout, regOK, dnsOK, r.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
