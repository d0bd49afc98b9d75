package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestHTTPTags runs real Caddy from a Caddyfile with three proxies on one
// app: one taking tags from the X-Netsel-Tag header, one with a fixed tag
// and the header, one without either. Tags narrow the service's serving
// instances to those carrying every one (ignoring case; never a critical
// one); a request whose tags no instance carries gets the handler's 502
// naming the service and the tags; without tags_header the header is
// ignored; a flood of distinct tags matches nothing.
func TestHTTPTags(t *testing.T) {
	e := newEnv(t)
	e.service("web", randomVIP())
	tagged := func(id string, tags ...string) {
		b := startBackend(t, id)
		ap := netip.MustParseAddrPort(b.addr)
		v, err := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: "web", Address: ap.Addr(), Port: int(ap.Port()),
			Weight: 1, Tags: tags, Registered: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		e.put(ks.InstanceKey("web", id), v)
	}
	tagged("a", "v2", "canary")
	tagged("b", "V2")
	tagged("c")
	tagged("d", "v2", "Canary") // critical
	crit, err := json.Marshal(&catalog.Health{State: catalog.StateCritical, Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e.put(ks.HealthKey("web", "d"), crit)

	header, fixed, plain := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	cfg, err := adapt(t, fmt.Sprintf(`{
	netsel {
		endpoint %s
	}
}
http://:%d {
	netsel
	reverse_proxy {
		dynamic netsel {
			tags_header X-Netsel-Tag
		}
	}
}
http://:%d {
	netsel
	reverse_proxy {
		dynamic netsel {
			tags canary
			tags_header X-Netsel-Tag
		}
	}
}
http://:%d {
	netsel
	reverse_proxy {
		dynamic netsel
	}
}
`, e.etcd.URL, header, fixed, plain))
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartCaddy(t, []byte(cfg))
	client := newClient()
	ask := func(port int, tags ...string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "web.netsel"
		for _, v := range tags {
			req.Header.Add("X-Netsel-Tag", v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	// reached sends 40 requests and returns the instances that answered.
	reached := func(port int, tags ...string) string {
		t.Helper()
		seen := map[string]bool{}
		for range 40 {
			code, body, _ := ask(port, tags...)
			if code != http.StatusOK {
				return fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
			}
			seen[body] = true
		}
		var ids []string
		for _, id := range []string{"a", "b", "c", "d"} {
			if seen[id] {
				ids = append(ids, id)
			}
		}
		return strings.Join(ids, ",")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return reached(header) == "a,b,c" }, "the proxy never served a, b and c")

	var flood []string
	for i := range 65 {
		flood = append(flood, fmt.Sprintf("t%d", i))
	}
	for _, tc := range []struct {
		port int
		tags []string
		want string
	}{
		{header, []string{"v2"}, "a,b"},
		{header, []string{"V2, CANARY"}, "a"},
		{header, []string{"v2", "canary"}, "a"},
		{header, []string{" canary ,,v2,v2"}, "a"},
		{header, []string{"canary"}, "a"}, // d carries it too, but is critical
		{header, []string{""}, "a,b,c"},
		{fixed, nil, "a"},
		{fixed, []string{"V2"}, "a"},
		{plain, []string{"nosuch"}, "a,b,c"},
		{plain, []string{"v2"}, "a,b,c"},
	} {
		if got := reached(tc.port, tc.tags...); got != tc.want {
			t.Errorf("port %d, X-Netsel-Tag %q: reached %s, want %s", tc.port, tc.tags, got, tc.want)
		}
	}
	for _, tc := range []struct {
		port int
		tags []string
		want string
	}{
		{header, []string{"nosuch"}, `tags "nosuch"`},
		{header, []string{"v2,c"}, `tags "c,v2"`},
		{fixed, []string{"nosuch"}, `tags "canary,nosuch"`},
		{header, flood, `service "web"`},
		{header, []string{strings.Repeat("x", 256)}, `service "web"`},
	} {
		code, body, h := ask(tc.port, tc.tags...)
		if code != http.StatusBadGateway || !strings.Contains(body, `service "web"`) || !strings.Contains(body, tc.want) || h.Get("Retry-After") == "" {
			t.Errorf("port %d, X-Netsel-Tag %.40q: %d %q Retry-After %q; want 502 naming the service and %s, with Retry-After",
				tc.port, tc.tags, code, body, h.Get("Retry-After"), tc.want)
		}
	}
}

// TestUpstreamsValidateTags: fixed tags are 1-255 bytes, at most 64, and
// tags_header is a header field name.
func TestUpstreamsValidateTags(t *testing.T) {
	many := make([]string, catalog.MaxTags+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		u    Upstreams
		want string
	}{
		{Upstreams{Tags: []string{"v2", ""}}, `tags: "" is not a tag`},
		{Upstreams{Tags: []string{strings.Repeat("x", 256)}}, "is not a tag: 1-255 bytes"},
		{Upstreams{Tags: many}, "65 tags, at most 64"},
		{Upstreams{TagsHeader: "X Netsel"}, "tags_header"},
		{Upstreams{TagsHeader: "X-Netsel:"}, "tags_header"},
	} {
		if err := tc.u.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error mentioning %q", tc.u, err, tc.want)
		}
	}
	ok := Upstreams{Tags: []string{"v2", "Canary"}, TagsHeader: "X-Netsel-Tag"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}
