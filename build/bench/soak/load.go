package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// paced runs fn rate times a second in total over workers goroutines until
// ctx ends. A worker whose call overruns its slot skips the missed ticks,
// so a slow server lowers the rate instead of piling up requests.
func paced(ctx context.Context, wg *sync.WaitGroup, rate float64, workers int, fn func()) {
	if rate <= 0 {
		return
	}
	every := time.Duration(float64(workers) / rate * float64(time.Second))
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the workers over one slot.
			if !sleepCtx(ctx, every*time.Duration(i)/time.Duration(workers)) {
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				fn()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dnsLoad queries the runner's DNS server and checks every answer against
// what the fleet registered.
type dnsLoad struct {
	addr     string
	zone     string
	services []string // the fleet's services
	perSvc   int      // instances of each
	webName  string
	webCount int
	fleet    *fleet
	st       *stats
	timeout  time.Duration
	udp, tcp *dns.Client
}

func newDNSLoad(addr, zone string, services []string, perSvc int, web string, webCount int, f *fleet, st *stats) *dnsLoad {
	const timeout = 2 * time.Second
	return &dnsLoad{
		addr: addr, zone: zone, services: services, perSvc: perSvc, webName: web, webCount: webCount,
		fleet: f, st: st, timeout: timeout,
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 4096},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
}

// query sends one query: A or SRV of a random fleet service or of soak-web.
func (l *dnsLoad) query() {
	svc, want := l.services[rand.N(len(l.services))], l.perSvc
	if rand.N(10) < 3 {
		svc, want = l.webName, l.webCount
	}
	qtype := dns.TypeA
	if rand.N(2) == 0 {
		qtype = dns.TypeSRV
	}
	name := svc + "." + l.zone
	p := l.st.phase()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	start := time.Now()
	in, _, err := l.udp.Exchange(m, l.addr)
	if err == nil && in.Truncated {
		// What a resolver does with TC: ask again over TCP.
		in, _, err = l.tcp.Exchange(m, l.addr)
	}
	d := time.Since(start)
	what := dns.TypeToString[qtype] + " " + name
	switch {
	case err != nil:
		l.st.fail(kDNSTimeout, p, what+": "+err.Error())
		return
	case in.Rcode != dns.RcodeSuccess:
		l.st.fail(kDNSRcode, p, what+": "+dns.RcodeToString[in.Rcode])
		return
	}
	if msg := l.check(svc, qtype, want, in); msg != "" {
		l.st.fail(kDNSWrong, p, what+": "+msg)
		return
	}
	l.st.dns(d, p)
}

// check returns what is wrong with answer in, or "".
func (l *dnsLoad) check(svc string, qtype uint16, want int, in *dns.Msg) string {
	switch qtype {
	case dns.TypeA:
		vip, _, ok := l.fleet.vip(svc)
		if !ok {
			return ""
		}
		for _, rr := range in.Answer {
			if a, ok := rr.(*dns.A); ok {
				if got, _ := netip.AddrFromSlice(a.A.To4()); got == vip {
					return ""
				}
				return fmt.Sprintf("A %s, want VIP %s", a.A, vip)
			}
		}
		return fmt.Sprintf("no A record (%d answers)", len(in.Answer))
	default:
		n := 0
		for _, rr := range in.Answer {
			if _, ok := rr.(*dns.SRV); ok {
				n++
			}
		}
		if n != want {
			return fmt.Sprintf("%d SRV records, want %d", n, want)
		}
		return ""
	}
}

// httpLoad sends GETs through the runner's HTTP proxy to soak-web.
type httpLoad struct {
	url, host string
	hc        *http.Client
	st        *stats
}

func newHTTPLoad(proxyURL, host string, st *stats) *httpLoad {
	return &httpLoad{url: proxyURL + "/", host: host, st: st, hc: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}}
}

func (l *httpLoad) get() {
	p := l.st.phase()
	req, _ := http.NewRequest(http.MethodGet, l.url, nil)
	req.Host = l.host
	resp, err := l.hc.Do(req)
	if err != nil {
		l.st.fail(kHTTPErr, p, err.Error())
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case err != nil:
		l.st.fail(kHTTPErr, p, "read body: "+err.Error())
	case resp.StatusCode != http.StatusOK:
		l.st.fail(kHTTPStatus, p, strconv.Itoa(resp.StatusCode)+" "+strings.TrimSpace(string(body)))
	case !strings.HasPrefix(string(body), "web-"):
		l.st.fail(kHTTPStatus, p, "unexpected body "+strconv.Quote(string(body)))
	default:
		l.st.success("http")
	}
}

// tcpLoad opens a connection through the VIP proxy, sends a message and
// expects it echoed.
type tcpLoad struct {
	addr string
	st   *stats
}

func (l *tcpLoad) echo() {
	p := l.st.phase()
	c, err := net.DialTimeout("tcp", l.addr, 2*time.Second)
	if err != nil {
		l.st.fail(kTCPErr, p, "dial: "+err.Error())
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := make([]byte, 32)
	crand.Read(msg)
	if _, err := c.Write(msg); err != nil {
		l.st.fail(kTCPErr, p, "write: "+err.Error())
		return
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		l.st.fail(kTCPErr, p, "read: "+err.Error())
		return
	}
	if !bytes.Equal(got, msg) {
		l.st.fail(kTCPMismatch, p, "echo differs")
		return
	}
	l.st.success("tcp")
}
