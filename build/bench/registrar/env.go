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
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar"
)

// ks is the keyspace the registrars write.
var ks = catalog.MustKeyspace(catalog.DefaultPrefix)

// newEtcdClient returns a client of the etcd at url.
func newEtcdClient(url string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", url, err)
	}
	return c, nil
}

// regServer is a registrar serving HTTP on a free loopback port, with an
// etcd client of its own.
type regServer struct {
	URL    string
	Reg    *registrar.Registrar
	client *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// startRegistrar starts a registrar over the etcd at etcdURL, as
// internal/testenv does for tests, and waits until its index has read etcd.
// With h2c it serves the registrar's handler on a server of its own that
// also speaks unencrypted HTTP/2, instead of Registrar.Serve (HTTP/1.1).
func startRegistrar(ctx context.Context, etcdURL string, h2c bool) (*regServer, error) {
	client, err := newEtcdClient(etcdURL)
	if err != nil {
		return nil, err
	}
	reg, err := registrar.New(ctx, registrar.Config{
		Client: client,
		// The bench's clients share one IP: measure the registrar, not its
		// per-client registration rate limit.
		Limits: registrar.Limits{RegisterRate: -1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
		var err error
		if h2c {
			err = serveH2C(sctx, reg.Handler(), ln)
		} else {
			err = reg.Serve(sctx, ln)
		}
		if err != nil {
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

// Stop stops the registrar as a crash would look to its clients: the
// server, its renewer and its etcd client go away.
func (s *regServer) Stop() {
	s.cancel()
	<-s.done
	s.Reg.Close()
	s.client.Close()
}

// serveH2C serves h on ln over HTTP/1.1 and unencrypted HTTP/2 until ctx ends.
func serveH2C(ctx context.Context, h http.Handler, ln net.Listener) error {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPClient returns the one HTTP client of the benchmark: keep-alive,
// with idle connections for every concurrent client; with h2c, requests are
// multiplexed over unencrypted HTTP/2 instead.
func newHTTPClient(clients int, h2c bool) *http.Client {
	var p *http.Protocols
	if h2c {
		p = new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        2*clients + 16,
			MaxIdleConnsPerHost: 2*clients + 16,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
			Protocols:           p,
		},
	}
}

// do sends one request and returns its status; the body is read and dropped
// so that the connection is reused.
func do(ctx context.Context, hc *http.Client, method, url, body string) (int, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, err
	}
	return resp.StatusCode, nil
}

// expect sends one request and fails unless it answers 200.
func expect(ctx context.Context, hc *http.Client, method, url, body string) error {
	code, err := do(ctx, hc, method, url, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", method, url, code)
	}
	return nil
}

// metric returns the value of the sample named exactly line (name with its
// labels) in the registrar's /metrics, 0 when absent.
func metric(ctx context.Context, hc *http.Client, base, line string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), line+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, nil
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

var errTimeout = errors.New("timed out")
