package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/checks"
)

var errTimeout = errors.New("timed out")

// regServer is a registrar serving HTTP on a free loopback port, with an
// etcd client of its own, as build/bench/registrar's env.go starts one
// (without its HTTP/2 variant, with checks configured).
type regServer struct {
	URL    string
	Reg    *registrar.Registrar
	client *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// startRegistrar starts a registrar over the etcd at etcdURL with checks
// opts and waits until its index has read etcd.
func startRegistrar(ctx context.Context, etcdURL string, opts checks.Options) (*regServer, error) {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", etcdURL, err)
	}
	reg, err := registrar.New(ctx, registrar.Config{
		Client: client,
		// The bench's clients share one IP: measure the registrar, not its
		// per-client registration rate limit.
		Limits: registrar.Limits{RegisterRate: -1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Checks: opts,
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start registrar: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		reg.Close()
		client.Close()
		return nil, fmt.Errorf("registrar listen: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &regServer{URL: "http://" + ln.Addr().String(), Reg: reg, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := reg.Serve(sctx, ln); err != nil {
			fmt.Fprintf(os.Stderr, "registrar %s: %v\n", s.URL, err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := reg.Index().WaitSynced(wctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops the server, the registrar (its checker revokes its
// membership) and its etcd client.
func (s *regServer) Stop() {
	s.cancel()
	<-s.done
	s.Reg.Close()
	s.client.Close()
}

// stats returns the registrar's checker counters; zero when checks are off.
func (s *regServer) stats() checks.Stats {
	if c := s.Reg.Checker(); c != nil {
		return c.Stats()
	}
	return checks.Stats{}
}

// newHTTPClient returns a keep-alive client with idle connections for
// every concurrent client.
func newHTTPClient(clients int) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        2*clients + 16,
			MaxIdleConnsPerHost: 2*clients + 16,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		},
	}
}

// expect sends one request and fails unless it answers 200; the body is
// read and dropped so that the connection is reused. (The registrar
// bench's do+expect, in one.)
func expect(ctx context.Context, hc *http.Client, method, url, body string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
	}
	return nil
}

// cpuTime returns this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// waitFor polls cond every 50ms until it holds, for at most d.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w after %v", what, errTimeout, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
