package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// report prints the soak's markdown report on w.
func report(w io.Writer, s *soak) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	fmt.Fprintf(w, "## Soak: %d instances over %d services (+3 soak-web), %v steady\n\n", c.instances, c.services, c.duration)
	fmt.Fprintf(w, "Heartbeat every %v, TTL %v; traffic: DNS %.0f q/s, HTTP %.0f req/s, TCP %.0f conn/s; sample every %v.\n", c.interval, c.ttl, c.dnsQPS, c.httpRPS, c.tcpCPS, c.sample)
	fmt.Fprintf(w, "Load average at the end: %s.\n\n", loadavg())

	fmt.Fprintln(w, "### Timeline (t from the start of registration)")
	fmt.Fprintln(w)
	for _, e := range s.events {
		fmt.Fprintf(w, "- t=%.1fs %s\n", e.at.Sub(s.start).Seconds(), e.text)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Samples")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| t s | phase | runner MB | etcd m0/m1/m2 MB | soak MB | instance keys | DNS ok | DNS p50 ms | DNS p99 ms | DNS max ms | DNS fail | HTTP ok/fail | TCP ok/fail | reg/hb retries | expired |")
	fmt.Fprintln(w, "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |")
	for _, sm := range s.samples {
		ph := sm.phase.String()
		if !sm.steady {
			ph = "registering"
		}
		e := sm.w.errs
		fmt.Fprintf(w, "| %.0f | %s | %.0f | %s | %.0f | %d | %d | %.1f | %.1f | %.1f | %d | %d/%d | %d/%d | %d/%d | %d |\n",
			sm.t.Seconds(), ph, sm.runnerMB, fmtMBs(sm.etcdMB), sm.selfMB, sm.instances,
			sm.w.dnsCount, ms(sm.w.dnsP50), ms(sm.w.dnsP99), ms(sm.w.dnsMax), e[kDNSTimeout]+e[kDNSRcode]+e[kDNSWrong],
			sm.w.ok["http"], e[kHTTPErr]+e[kHTTPStatus], sm.w.ok["tcp"], e[kTCPErr]+e[kTCPMismatch],
			e[kRegisterErr], e[kHeartbeatErr], e[kExpired])
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Errors seen by clients, by kind and by the phase the operation started in")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| kind |")
	for p := range numPhases {
		fmt.Fprintf(w, " %s |", p)
	}
	fmt.Fprintln(w, " total |")
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" ---: |", int(numPhases)+1))
	st := s.st
	st.mu.Lock()
	for _, k := range kinds {
		var sum int64
		fmt.Fprintf(w, "| %s |", k)
		for p := range numPhases {
			fmt.Fprintf(w, " %d |", st.total[k][p])
			sum += st.total[k][p]
		}
		fmt.Fprintf(w, " %d |\n", sum)
	}
	fmt.Fprintf(w, "\nSuccesses: DNS %d, HTTP %d, TCP %d.\n\n", st.okTotal["dns"], st.okTotal["http"], st.okTotal["tcp"])
	var ex []string
	for k, v := range st.examples {
		for _, m := range v {
			kind, _, _ := strings.Cut(k, "\x00")
			ex = append(ex, kind+" — "+m)
		}
	}
	sort.Strings(ex)
	if len(ex) > 0 {
		fmt.Fprintln(w, "First messages of each kind in each phase:")
		fmt.Fprintln(w)
		for _, m := range ex {
			fmt.Fprintf(w, "- %s\n", truncate(m, 240))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "DNS latency of good answers over the whole run, by phase:")
	fmt.Fprintln(w)
	for p := range numPhases {
		if n := len(st.allLat[p]); n > 0 {
			p50, p99, max := percentiles(st.allLat[p])
			fmt.Fprintf(w, "- %s: %d answers, p50 %.2f ms, p99 %.2f ms, max %.1f ms\n", p, n, ms(p50), ms(p99), ms(max))
		}
	}
	dnsOutside := int64(0)
	for _, k := range []string{kDNSTimeout, kDNSRcode, kDNSWrong} {
		for p := range numPhases {
			if p != phaseRunnerDown {
				dnsOutside += st.total[k][p]
			}
		}
	}
	expired := len(st.expired)
	keepaliveExits := sumPhases(st.total[kKeepaliveEnd])
	st.mu.Unlock()
	fmt.Fprintln(w)

	fmt.Fprintln(w, "### Memory")
	fmt.Fprintln(w)
	flat := s.memoryReport(w)

	fmt.Fprintln(w, "### Instances")
	fmt.Fprintln(w)
	lost := -1
	if f := s.final; f != nil {
		lost = len(f.missing)
		fmt.Fprintf(w, "- at the end, before deregistering: %d instance keys in etcd; %d of %d expected missing; %d unexpected\n", f.listed, len(f.missing), len(s.expected), f.extra)
		if len(f.missing) > 0 {
			fmt.Fprintf(w, "  - missing: %s\n", truncate(strings.Join(f.missing, " "), 600))
		}
		fmt.Fprintf(w, "- instances a Keepalive saw expire (heartbeat answered 404): %d\n", expired)
		fmt.Fprintf(w, "- Keepalives that gave up (non-retryable error): %d\n", keepaliveExits)
		fmt.Fprintf(w, "- after every Keepalive deregistered: %d ok, %d failed; %d instance keys left\n\n", s.fleet.dereg.Load(), s.fleet.deregKO.Load(), f.afterDereg)
	} else {
		fmt.Fprintln(w, "- the final listing failed (see the timeline)")
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "### Targets")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- 0 lost instances: %s (%d missing at the end, %d expired on the way)\n", verdict(lost == 0 && expired == 0), lost, expired)
	fmt.Fprintf(w, "- 0 failed DNS answers outside the runner-down window: %s (%d). The window runs from the SIGKILL until the restarted registrar answers /v1/health with 200 and its DNS server answers a query with an rcode other than SERVFAIL/REFUSED; a query counts in the phase it was sent in. While the DNS server is dead it cannot answer, so those failures are counted apart, not hidden.\n", verdict(dnsOutside == 0), dnsOutside)
	fmt.Fprintf(w, "- memory flat after warm-up: %s\n", verdict(flat))
}

func sumPhases(v *[numPhases]int64) int64 {
	var n int64
	for _, x := range v {
		n += x
	}
	return n
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// failed reports whether a target was missed (to keep the logs).
func (s *soak) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final == nil || len(s.final.missing) > 0 {
		return true
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return len(s.st.expired) > 0 || sumPhases(s.st.total[kDNSWrong]) > 0 || sumPhases(s.st.total[kKeepaliveEnd]) > 0
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// since formats the time from the fleet's start.
func (s *soak) since(t time.Time) string { return fmt.Sprintf("%.0fs", t.Sub(s.start).Seconds()) }
