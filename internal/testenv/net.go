package testenv

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port whose port was free a moment ago,
// for servers that must be told their address before they start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SyncBuffer is a strings.Builder safe for concurrent writers, such as the
// logs of a server under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Backend is an HTTP server on loopback that answers every request with its
// name, standing in for a service instance.
type Backend struct {
	Name string
	Addr netip.AddrPort
	srv  *http.Server
}

// StartBackend starts a Backend on a free loopback port; it is stopped when
// the test ends.
func StartBackend(t testing.TB, name string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("backend listen: %v", err)
	}
	b := &Backend{Name: name, Addr: netip.MustParseAddrPort(ln.Addr().String())}
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go b.srv.Serve(ln)
	t.Cleanup(b.Kill)
	return b
}

// Kill closes the backend's listener and every connection at once, as a
// crashed process would.
func (b *Backend) Kill() { b.srv.Close() }

// OpenFDs returns the number of descriptors this process holds open; it
// skips the test where /proc is not there to tell.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// ServeTCP listens on a free loopback port until the test ends and hands
// each accepted connection to handle, in its own goroutine; handle owns the
// connection and closes it. It returns the listener's address.
func ServeTCP(t testing.TB, handle func(net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}
