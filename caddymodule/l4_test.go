package caddymodule

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	_ "github.com/mholt/caddy-l4/modules/l4tls"

	"github.com/netsel/netsel/internal/testenv"
)

func TestL4HandlerRoutesBySNIAndHost(t *testing.T) {
	e := newEnv(t)
	e.service("plain", randomVIP())
	e.instance("plain", "a", startBackend(t, "plain").addr, 1)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	t.Cleanup(secure.Close)
	e.service("secure", randomVIP())
	e.instance("secure", "a", secure.Listener.Addr().String(), 1)

	l4addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, l4: map[string]any{"servers": map[string]any{"l4": map[string]any{
		"listen": []string{l4addr},
		"routes": []any{
			map[string]any{
				"match":  []any{map[string]any{"tls": map[string]any{"sni": []string{"*.netsel"}}}},
				"handle": []any{map[string]any{"handler": "netsel"}},
			},
			map[string]any{
				"match":  []any{map[string]any{"http": []any{map[string]any{"host": []string{"*.netsel"}}}}},
				"handle": []any{map[string]any{"handler": "netsel"}},
			},
		},
	}}}})

	plainClient := newClient()
	testenv.Eventually(t, 5*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+l4addr+"/", nil)
		req.Host = "plain.netsel"
		resp, err := plainClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "plain"
	}, "HTTP by Host never reached service plain through caddy-l4")

	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "secure.netsel", InsecureSkipVerify: true},
		DialContext:     (&net.Dialer{}).DialContext,
	}}
	resp, err := tlsClient.Get("https://" + l4addr + "/")
	if err != nil {
		t.Fatalf("TLS by SNI through caddy-l4: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "secure" {
		t.Errorf("TLS by SNI reached %q, want secure", b)
	}

	// An unknown service gets its connection closed, not a hang.
	req, _ := http.NewRequest(http.MethodGet, "http://"+l4addr+"/", nil)
	req.Host = "nosuch.netsel"
	start := time.Now()
	if resp, err := newClient().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("unknown service answered %s", resp.Status)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("unknown service took %v to fail", d)
	}
}

// TestL4HandlerNeverDialsItself: an instance written to etcd at the caddy-l4
// server's own address would loop every connection through the handler
// until descriptors ran out; the app reserves its layer4 listeners, so the
// connection is closed at once.
func TestL4HandlerNeverDialsItself(t *testing.T) {
	e := newEnv(t)
	l4addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	e.service("self", randomVIP())
	e.instance("self", "a", l4addr, 1)
	e.service("plain", randomVIP())
	e.instance("plain", "a", startBackend(t, "plain").addr, 1)
	startCaddy(t, config{etcdURL: e.etcd.URL, l4: map[string]any{"servers": map[string]any{"l4": map[string]any{
		"listen": []string{l4addr},
		"routes": []any{map[string]any{
			"match":  []any{map[string]any{"http": []any{map[string]any{"host": []string{"*.netsel"}}}}},
			"handle": []any{map[string]any{"handler": "netsel"}},
		}},
	}}}})
	client := newClient()
	testenv.Eventually(t, 5*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+l4addr+"/", nil)
		req.Host = "plain.netsel"
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "plain"
	}, "HTTP by Host never reached service plain through caddy-l4")

	before := testenv.OpenFDs(t)
	req, _ := http.NewRequest(http.MethodGet, "http://"+l4addr+"/", nil)
	req.Host = "self.netsel"
	start := time.Now()
	if resp, err := newClient().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("an instance at the layer4 listener answered %s", resp.Status)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the connection took %v to fail", d)
	}
	if fds := testenv.OpenFDs(t); fds > before+32 {
		t.Errorf("one connection took descriptors from %d to %d", before, fds)
	}
}
