package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netsel/netsel/internal/childproc"
)

// The checked instances' HTTP backends run in a child process (this binary
// with -serve-backends), so that answering the probes is not counted in
// the measured process's CPU. The child listens on -listeners shared
// loopback ports spread over -ips addresses 127.0.0.10, .11, ..., and on
// one port of its own for each of the -flip instances that the bench makes
// fail; every port answers GET 200, except the flip ports while failing
// (500). It prints "shared ADDR", "flip ADDR" and "control ADDR" lines,
// then "ready"; POST /fail and /ok on the control address switch the flip
// ports.

// backendOptions are the child's flags.
type backendOptions struct {
	listeners, flip, ips int
}

// serveBackends is the child's main: it serves until killed.
func serveBackends(o backendOptions) error {
	var failing atomic.Bool
	flipPorts := map[netip.AddrPort]bool{}
	var lns []net.Listener
	listen := func(i int, kind string) error {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 10+i%o.ips))
		if err != nil {
			return fmt.Errorf("backend listen: %w", err)
		}
		lns = append(lns, ln)
		ap := ln.Addr().(*net.TCPAddr).AddrPort()
		if kind == "flip" {
			flipPorts[ap] = true
		}
		fmt.Printf("%s %s\n", kind, ap)
		return nil
	}
	for i := range o.listeners {
		if err := listen(i, "shared"); err != nil {
			return err
		}
	}
	for i := range o.flip {
		if err := listen(i, "flip"); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
			if tcp, ok := local.(*net.TCPAddr); ok && failing.Load() && flipPorts[tcp.AddrPort()] {
				http.Error(w, "failing on purpose", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok\n")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	for _, ln := range lns {
		go srv.Serve(ln)
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("control listen: %w", err)
	}
	fmt.Printf("control %s\nready\n", ctl.Addr())
	return http.Serve(ctl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			failing.Store(true)
		case "/ok":
			failing.Store(false)
		default:
			http.NotFound(w, r)
		}
	}))
}

// backends is the parent's handle on the child.
type backends struct {
	proc    *childproc.Process
	shared  []netip.AddrPort
	flip    []netip.AddrPort
	control string
}

// startBackends starts the child and reads its addresses.
func startBackends(ctx context.Context, o backendOptions) (*backends, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	proc, err := childproc.Start(self, []string{"-serve-backends",
		"-listeners", strconv.Itoa(o.listeners), "-flip", strconv.Itoa(o.flip), "-ips", strconv.Itoa(o.ips)}, pw)
	if err != nil {
		return nil, err
	}
	go func() {
		<-proc.Exited()
		pw.Close()
	}()
	b := &backends{proc: proc}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		done := false
		for sc.Scan() {
			if done { // the child's later output: errors only
				fmt.Fprintln(os.Stderr, "backends:", sc.Text())
				continue
			}
			kind, addr, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "shared", "flip":
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					ready <- fmt.Errorf("backends said %q: %w", sc.Text(), err)
					return
				}
				if kind == "flip" {
					b.flip = append(b.flip, ap)
				} else {
					b.shared = append(b.shared, ap)
				}
			case "control":
				b.control = "http://" + addr
			case "ready":
				done = true
				ready <- nil
			default:
				fmt.Fprintln(os.Stderr, "backends:", sc.Text())
			}
		}
		if !done {
			ready <- errors.New("backends exited before they were ready")
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = fmt.Errorf("backends not ready: %w", errTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

// addr returns the backend of checked instance i: flip instances have a
// port each, the others share the shared ports.
func (b *backends) addr(i int) netip.AddrPort {
	if i < len(b.flip) {
		return b.flip[i]
	}
	return b.shared[i%len(b.shared)]
}

// setFailing makes the flip ports answer 500 (true) or 200 (false).
func (b *backends) setFailing(ctx context.Context, hc *http.Client, on bool) error {
	path := "/ok"
	if on {
		path = "/fail"
	}
	return expect(ctx, hc, http.MethodPost, b.control+path, "")
}

// cpu returns the child's user+system CPU time so far, from /proc.
func (b *backends) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.proc.PID()))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses:
	// utime and stime are the 14th and 15th fields, in USER_HZ (100) ticks.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (b *backends) stop() { b.proc.Stop(syscall.SIGTERM, 5*time.Second) }
