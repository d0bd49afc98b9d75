// Package hosts holds the pieces of the across-hosts benchmark
// (multihost.BenchmarkHosts, run by run.sh in this directory) that need no
// test bed: the Go io.Copy proxy it takes as the TCP anchor, HAProxy's
// configuration, parsers of iperf3's and wrk's output, and the statistics.
package hosts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DialFunc dials address over network, as testenv.Host.DialContext does.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// CopyProxy is the anchor: the least a Go TCP proxy can do. It accepts on ln
// until ln is closed and forwards each connection to target, dialled with
// dial, io.Copy both ways (splice(2) between TCP sockets on Linux) with
// half-close, as build/bench/proxy's copyproxy does. Without splice it
// copies through a 32 KiB buffer instead (read(2) and write(2)).
func CopyProxy(ln net.Listener, dial DialFunc, target string, splice bool) {
	cp := io.Copy
	if !splice {
		cp = func(dst io.Writer, src io.Reader) (int64, error) {
			// Hide ReadFrom and WriteTo, io.Copy's way to splice.
			return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
		}
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := dial(context.Background(), "tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{})
			go func() {
				cp(u, c)
				u.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			cp(c, u)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

// HAProxyTCP returns an HAProxy configuration that forwards bind to
// server in mode tcp, with the timeouts and limits of build/bench/proxy's.
func HAProxyTCP(bind, server string) string {
	return fmt.Sprintf(`global
	maxconn 8000
defaults
	mode tcp
	timeout connect 2s
	timeout client 60s
	timeout server 60s
frontend fe
	bind %s
	default_backend be
backend be
	server s1 %s
`, bind, server)
}

// IperfGbps returns the received throughput, in Gbit/s, of iperf3 -J's
// output.
func IperfGbps(out []byte) (float64, error) {
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3: no received throughput")
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// Wrk is what BenchmarkHosts keeps of one wrk --latency run.
type Wrk struct {
	RPS    float64 // requests/s
	P99    float64 // milliseconds
	Errors int     // socket errors and non-2xx/3xx responses
}

// ParseWrk reads the output of wrk --latency.
func ParseWrk(out []byte) (Wrk, error) {
	var w Wrk
	var gotRPS, gotP99 bool
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return w, fmt.Errorf("wrk Requests/sec %q: %w", f[1], err)
			}
			w.RPS, gotRPS = v, true
		case len(f) == 2 && f[0] == "99%":
			d, err := wrkDuration(f[1])
			if err != nil {
				return w, err
			}
			w.P99, gotP99 = d, true
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for _, v := range f[2:] {
				if n, err := strconv.Atoi(strings.TrimSuffix(v, ",")); err == nil {
					w.Errors += n
				}
			}
		case len(f) >= 5 && f[0] == "Non-2xx":
			n, _ := strconv.Atoi(f[len(f)-1])
			w.Errors += n
		}
	}
	if !gotRPS || !gotP99 {
		return w, fmt.Errorf("wrk output without Requests/sec or 99%% latency:\n%s", out)
	}
	return w, nil
}

// wrkDuration parses one of wrk's latencies ("1.23ms", "870.00us", "1.02s")
// into milliseconds.
func wrkDuration(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"m", 60e3}, {"s", 1e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk latency %q: %w", s, err)
			}
			return f * u.ms, nil
		}
	}
	return 0, fmt.Errorf("wrk latency %q: no unit", s)
}

// Median returns the median of xs (the mean of the two middle ones for an
// even count), NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratios returns num[i]/den[i] for each round i.
func Ratios(num, den []float64) []float64 {
	r := make([]float64, min(len(num), len(den)))
	for i := range r {
		r[i] = num[i] / den[i]
	}
	return r
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method: the smallest value at least p % of ds do not exceed.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(k, 0)]
}

// RatioText is the median of m[num]'s per-round ratios to m[den]'s, as
// text naming den by its first word.
func RatioText(m map[string][]float64, num, den string) string {
	if num == den {
		return "1 (anchor)"
	}
	return fmt.Sprintf("%.2f× %s", Median(Ratios(m[num], m[den])), strings.Split(den, " ")[0])
}

// MedianText is the median of xs with prec decimals, "–" for none.
func MedianText(xs []float64, prec int) string {
	if len(xs) == 0 {
		return "–"
	}
	return strconv.FormatFloat(Median(xs), 'f', prec, 64)
}

// Last returns the last sample of each case of m, rounded to 2 decimals.
func Last(m map[string][]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = math.Round(v[len(v)-1]*100) / 100
	}
	return out
}

// CPUTime returns the CPU time (user and system) process pid has used so
// far, at the kernel's resolution of a clock tick (10 ms).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's name, which is in parentheses:
	// state is field 3, utime and stime are fields 14 and 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(u+s) * (time.Second / clockTicks), nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// Env returns the environment variable name, or def when it is empty.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// EnvInt returns the environment variable name as a positive integer, or
// def when it is empty or not one.
func EnvInt(name string, def int) int {
	n, err := strconv.Atoi(Env(name, strconv.Itoa(def)))
	if err != nil || n < 1 {
		return def
	}
	return n
}

// Samples formats xs as "a/b/c" with prec decimals.
func Samples(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(parts, " ")
}
