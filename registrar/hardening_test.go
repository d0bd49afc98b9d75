package registrar_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// Short limits, so the tests see them act.
const (
	testHeaderTimeout = 300 * time.Millisecond
	testReadTimeout   = 600 * time.Millisecond
)

func shortTimeouts(c *registrar.Config) {
	c.ReadHeaderTimeout = testHeaderTimeout
	c.ReadTimeout = testReadTimeout
	c.IdleTimeout = testReadTimeout
	c.MaxHeaderBytes = 4 << 10
}

// closedWithin reads from conn until the server closes it and fails the
// test unless that happens within limit of start. It returns what was read.
func closedWithin(t *testing.T, conn net.Conn, start time.Time, limit time.Duration) string {
	t.Helper()
	conn.SetReadDeadline(start.Add(limit + 5*time.Second))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept the connection open for %v (read %q)", time.Since(start), b)
	}
	if took := time.Since(start); took > limit {
		t.Errorf("server closed the connection after %v, want within %v", took, limit)
	}
	return string(b)
}

// TestSlowClientsAreCutOff: a client that sends its headers a byte at a
// time, one that never finishes its body, one that sends nothing, and one
// that idles between requests are each cut off within the configured
// timeouts, so none pins a goroutine.
func TestSlowClientsAreCutOff(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, shortTimeouts)
	slack := 2 * time.Second

	t.Run("headers dripped", func(t *testing.T) {
		conn := dial(t, reg.Addr)
		start := time.Now()
		// Keep dripping well past the header timeout, in the background.
		go func() {
			msg := "POST /v1/services/web/instances HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)
			for i := range len(msg) {
				if _, err := conn.Write([]byte{msg[i]}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		closedWithin(t, conn, start, testHeaderTimeout+slack)
	})
	t.Run("nothing sent", func(t *testing.T) {
		conn := dial(t, reg.Addr)
		closedWithin(t, conn, time.Now(), testHeaderTimeout+slack)
	})
	t.Run("body never finished", func(t *testing.T) {
		conn := dial(t, reg.Addr)
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/services/web/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"address\":")
		out := closedWithin(t, conn, start, testReadTimeout+slack)
		if out != "" && !strings.HasPrefix(out, "HTTP/1.1 400") {
			t.Errorf("answer to a truncated body: %q", out)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial(t, reg.Addr)
		fmt.Fprintf(conn, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		conn.SetReadDeadline(start.Add(testReadTimeout + 5*time.Second))
		if _, err := br.ReadByte(); err == nil || time.Since(start) > testReadTimeout+slack {
			t.Errorf("idle connection: %v after %v, want closed within %v", err, time.Since(start), testReadTimeout+slack)
		}
	})
	t.Run("TLS handshake never started", func(t *testing.T) {
		certs := testenv.NewCerts(t)
		_, url := startTLSRegistrar(t, certs, false, shortTimeouts)
		conn := dial(t, strings.TrimPrefix(url, "https://"))
		conn.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello, then nothing
		closedWithin(t, conn, time.Now(), testHeaderTimeout+slack)
	})
	// The registrar still serves after all that.
	if r := do(t, "GET", reg.URL+"/v1/health", nil); r.status != http.StatusOK {
		t.Errorf("health after slow clients: %d %s", r.status, r.body)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestHeaderAndBodyLimits: oversized headers are answered 431, oversized
// bodies 413.
func TestHeaderAndBodyLimits(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, shortTimeouts)
	r := do(t, "GET", reg.URL+"/v1/services", nil, "X-Big", strings.Repeat("a", 8<<10))
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB header over a 4 KiB limit: %d, want 431", r.status)
	}
	big := `{"address":"127.0.0.1","port":80,"tags":["` + strings.Repeat("a", registrar.MaxBodyBytes) + `"]}`
	r = do(t, "POST", reg.URL+"/v1/services/web/instances", big)
	if r.status != http.StatusRequestEntityTooLarge || r.apiError(t).Field != "body" {
		t.Errorf("body over %d bytes: %d %s, want 413", registrar.MaxBodyBytes, r.status, r.body)
	}
}

// TestBlockingQueryOutlivesTimeouts: a blocking query may wait longer than
// the server's read and write timeouts; the limits are for slow clients, not
// for long polls.
func TestBlockingQueryOutlivesTimeouts(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		shortTimeouts(c)
		c.RequestTimeout = 200 * time.Millisecond
		c.WriteTimeout = 300 * time.Millisecond
	})
	register(t, reg.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})
	r := do(t, "GET", reg.URL+"/v1/services/web", nil)
	idx := r.header.Get(api.IndexHeader)
	start := time.Now()
	wait := 3 * testReadTimeout
	r = do(t, "GET", reg.URL+"/v1/services/web?index="+idx+"&wait="+wait.String(), nil)
	if r.status != http.StatusOK {
		t.Fatalf("blocking query: %d %s", r.status, r.body)
	}
	if took := time.Since(start); took < wait {
		t.Errorf("blocking query returned after %v, before its wait of %v: cut short", took, wait)
	}
}

// TestHTTP2OverTLS: over TLS the registrar speaks HTTP/2 to clients that
// offer it, with the same answers.
func TestHTTP2OverTLS(t *testing.T) {
	certs := testenv.NewCerts(t)
	_, url := startTLSRegistrar(t, certs, false)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET over TLS: %s %s, want 200 over HTTP/2", resp.Proto, resp.Status)
	}
}
