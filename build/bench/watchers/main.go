// Command watchers measures what blocking queries cost the registrar: it
// starts the NetSel runner (registrar and embedded etcd only) as a child,
// registers -services services, holds one blocking query on each, then
// changes services one at a time and counts how many queries each change
// woke (netsel_registrar_blocking_wakeups_total) and answered, and how much
// memory the held queries take in the runner (RSS and Go heap). The same
// is then done with as many queries on the whole service list, which every
// change must answer: the cost of a catalog-wide watch, side by side.
//
//	go build -o /tmp/netsel ./build/netsel
//	go run ./build/bench/watchers -netsel /tmp/netsel [-services 1000] [-changes 20] [-runs 3] [-base OLDBINARY]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	binary := flag.String("netsel", "", "the NetSel runner `binary` to measure (go build -o BINARY ./build/netsel)")
	base := flag.String("base", "", "an older runner `binary` to measure one-service queries on too, side by side (its wake-ups are not counted: it may lack the counter)")
	services := flag.Int("services", 1000, "services, and blocking queries of each kind")
	changes := flag.Int("changes", 20, "changes measured per kind of query")
	runs := flag.Int("runs", 3, "runs of each kind, each on a fresh runner, interleaved; medians are reported")
	flag.Parse()
	if *binary == "" {
		log.Fatal("-netsel is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := measure(ctx, *binary, *base, *services, *changes, *runs); err != nil {
		log.Fatal(err)
	}
}

// runner is the NetSel runner under measurement.
type runner struct {
	url string
	cmd *exec.Cmd
	dir string
}

func startRunner(ctx context.Context, binary string, services int) (*runner, error) {
	dir, err := os.MkdirTemp("", "netsel-watchers-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	r := &runner{url: "http://" + ports[0], dir: dir}
	n := strconv.Itoa(4 * services)
	r.cmd = exec.Command(binary, "-registrar", ports[0], "-etcd-listen", ports[1], "-etcd-peer", ports[2],
		"-data-dir", filepath.Join(dir, "etcd"), "-dns", "", "-http", "", "-vip-proxy=false", "-checks=false",
		"-max-blocking", n, "-max-blocking-per-client", n, "-max-services", n, "-register-rate", "-1", "-log-level", "warn")
	r.cmd.Stdout, r.cmd.Stderr = os.Stderr, os.Stderr
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(r.url + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("runner not healthy within a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *runner) stop() {
	r.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill() //nolint:errcheck
		<-done
	}
	os.RemoveAll(r.dir)
}

// rss is the runner's resident set in bytes.
func (r *runner) rss() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", r.cmd.Process.Pid)
}

// cpu is the runner's CPU time (user and system) so far.
func (r *runner) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ
}

func freePorts(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}
