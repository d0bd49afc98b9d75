package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// TestLimitListener: an HTTP server behind netsel_limit holds max_conns
// connections; one more is reset at once, and once one closes a request
// is served again.
func TestLimitListener(t *testing.T) {
	addr := testenv.FreeAddr(t)
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"s": map[string]any{
			"listen":            []string{addr},
			"listener_wrappers": []any{map[string]any{"wrapper": "netsel_limit", "max_conns": 3}},
			"routes":            []any{map[string]any{"handle": []any{map[string]any{"handler": "static_response", "body": "ok"}}}},
			"automatic_https":   map[string]any{"disable": true},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartCaddy(t, cfg)
	get := func() error {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return get() == nil }, "server on %s never answered", addr)

	// Three connections are held open, each served. The server may still
	// count the probe's connection above for a moment after the probe has
	// its answer (it closes its side asynchronously), so a connection that
	// is reset is dialled again, until each of the three is served.
	var held []net.Conn
	for i := range 3 {
		var c net.Conn
		var last string
		testenv.Eventually(t, 5*time.Second, func() bool {
			var err error
			if c, err = net.DialTimeout("tcp", addr, 3*time.Second); err != nil {
				last = err.Error()
				return false
			}
			c.SetDeadline(time.Now().Add(3 * time.Second))
			b := make([]byte, 12)
			_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if err == nil {
				_, err = io.ReadFull(c, b)
			}
			if err != nil || string(b) != "HTTP/1.1 200" {
				last = fmt.Sprintf("%q %v", b, err)
				c.Close()
				return false
			}
			return true
		}, "held connection %d never served under max_conns 3: %s", i, lazyString(func() string { return last }))
		held = append(held, c)
	}
	for range 20 {
		refusedAtOnce(t, addr)
	}
	if err := get(); err == nil {
		t.Fatal("a 4th connection was served past max_conns 3")
	}
	held[0].Close()
	testenv.Eventually(t, 5*time.Second, func() bool { return get() == nil }, "a freed slot was never reused")
}

// TestLimitListenerErrorAnswers: behind netsel_limit, an answer the server
// gives before it closes (431 to an oversized header, with the request's
// bytes still unread) reaches the client: the connection is half-closed
// first, as without the wrapper, not reset.
func TestLimitListenerErrorAnswers(t *testing.T) {
	addr := testenv.FreeAddr(t)
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"s": map[string]any{
			"listen":            []string{addr},
			"max_header_bytes":  1024,
			"listener_wrappers": []any{map[string]any{"wrapper": "netsel_limit", "max_conns": 100}},
			"routes":            []any{map[string]any{"handle": []any{map[string]any{"handler": "static_response", "body": "ok"}}}},
			"automatic_https":   map[string]any{"disable": true},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartCaddy(t, cfg)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	testenv.Eventually(t, 5*time.Second, func() bool {
		resp, err := c.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "server on %s never answered", addr)
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 6<<10))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d with a 6 KiB header: %v", i, err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || err != nil {
			t.Fatalf("request %d with a 6 KiB header: %d %v, want 431", i, resp.StatusCode, err)
		}
	}
}
