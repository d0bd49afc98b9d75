package testenv

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar"
)

// Registrar is a registrar serving real HTTP on loopback for one test.
type Registrar struct {
	// URL is the registrar's base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Addr is its host:port.
	Addr string
	// Registrar is the running registrar.
	Registrar *registrar.Registrar

	stopOnce sync.Once
	stop     func()
}

// RegistrarOption adjusts the registrar.Config of StartRegistrar.
type RegistrarOption func(*registrar.Config)

// StartRegistrar runs a registrar over the etcd at etcdURL (e.g.
// Etcd.URL, or a Proxy's address for fault tests) on a free 127.0.0.1 port.
// It is stopped when the test ends, or earlier by Stop.
func StartRegistrar(t testing.TB, etcdURL string, opts ...RegistrarOption) *Registrar {
	t.Helper()
	return StartRegistrarAt(t, etcdURL, "127.0.0.1:0", opts...)
}

// StartRegistrarAt is StartRegistrar listening on addr, e.g. the Addr of a
// stopped Registrar to stand in for a restart.
func StartRegistrarAt(t testing.TB, etcdURL, addr string, opts ...RegistrarOption) *Registrar {
	t.Helper()
	cfg := registrar.Config{
		Client:         NewClient(t, etcdURL),
		Keyspace:       catalog.MustKeyspace(catalog.DefaultPrefix),
		Logger:         slog.New(slog.NewTextHandler(LogWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
		RequestTimeout: 5 * time.Second,
		EtcdTimeout:    2 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	reg, err := registrar.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start registrar: %v", err)
	}
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		// A just-closed port may linger briefly; retry for a restart.
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		reg.Close()
		t.Fatalf("registrar listen %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := reg.Serve(ctx, ln); err != nil {
			t.Logf("registrar on %s: %v", ln.Addr(), err)
		}
	}()
	r := &Registrar{
		URL:       "http://" + ln.Addr().String(),
		Addr:      ln.Addr().String(),
		Registrar: reg,
	}
	r.stop = func() {
		cancel()
		<-done
		reg.Close()
	}
	t.Cleanup(r.Stop)
	if c := reg.Checker(); c != nil {
		// Its membership key is in: it will not change the keyspace under
		// a test that has begun.
		Eventually(t, 10*time.Second, func() bool {
			return slices.ContainsFunc(reg.Index().Snapshot().Members(), func(m *catalog.Member) bool { return m.ID == c.ID() })
		}, "registrar %s never saw its own membership key", c.ID())
	}
	return r
}

// Stop shuts the registrar down now (as a crash or a restart would, seen
// from its clients). It is safe to call more than once.
func (r *Registrar) Stop() { r.stopOnce.Do(r.stop) }

// LogWriter returns a writer that sends each write to t.Log, without its
// final newline, until the test's cleanup runs, and then drops them: a
// part may still log after its test ended, when closing it timed out, and
// t.Log would panic then. Cleanups registered after LogWriter run before it
// stops.
func LogWriter(t testing.TB) io.Writer {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.t = nil
	})
	return w
}

type logWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}
