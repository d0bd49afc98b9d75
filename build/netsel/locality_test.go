package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
)

// TestRunnerLocality runs the stack with -locality az1 and a service with
// an instance registered in az1 and one in az2: DNS gives az1's priority
// 10 and az2's 20 (UDP and TCP), the HTTP proxy and the VIP send every
// request to az1's; with it in maintenance, to az2's; then back. A bad
// -locality stops the runner before it starts, naming the flag.
func TestRunnerLocality(t *testing.T) {
	bad := stackFlags(t, "127.81.0.0/16")
	bad.locality = "Zone A"
	if err := runStack(t.Context(), bad, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "-locality") {
		t.Errorf("-locality %q: %v, want an error naming -locality", bad.locality, err)
	}

	f := stackFlags(t, "127.81.0.0/16")
	f.locality = "az1"
	runTestStack(t, f)
	// A connection through the VIP stays with its instance: every request
	// on a new one.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	call := func(method, path string, body any) []byte {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, "http://"+f.registrar+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}
	var vip string
	for _, in := range []struct{ id, zone string }{{"a", "az1"}, {"b", "az2"}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, in.id) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		var a struct {
			VIP  string `json:"vip"`
			Port int    `json:"port"`
		}
		b := call(http.MethodPost, "/v1/services/web/instances", map[string]any{"id": in.id, "address": "127.0.0.1",
			"port": ln.Addr().(*net.TCPAddr).Port, "zone": in.zone, "ttl": "1h"})
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		vip = net.JoinHostPort(a.VIP, fmt.Sprint(a.Port))
	}

	// reached returns the instances that answered 10 requests through the
	// HTTP proxy and 10 through the VIP, and the SRV set over UDP and TCP
	// as "id:priority", by id.
	reached := func() string {
		var out []string
		for _, target := range []struct{ url, host string }{{"http://" + f.http + "/", "web.netsel"}, {"http://" + vip + "/", ""}} {
			seen := map[string]bool{}
			for range 10 {
				req, _ := http.NewRequest(http.MethodGet, target.url, nil)
				if target.host != "" {
					req.Host = target.host
				}
				resp, err := client.Do(req)
				if err != nil {
					return err.Error()
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[fmt.Sprintf("%d %s", resp.StatusCode, b)] = true
			}
			out = append(out, sortedKeys(seen))
		}
		for _, proto := range []string{"udp", "tcp"} {
			m := new(dns.Msg)
			m.SetQuestion("web.netsel.", dns.TypeSRV)
			r, _, err := (&dns.Client{Net: proto, Timeout: 3 * time.Second}).Exchange(m, f.dns)
			if err != nil {
				return err.Error()
			}
			seen := map[string]bool{}
			for _, rr := range r.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					seen[fmt.Sprintf("%s:%d", strings.TrimSuffix(srv.Target, ".web.netsel."), srv.Priority)] = true
				}
			}
			out = append(out, sortedKeys(seen))
		}
		return strings.Join(out, " | ")
	}
	expect := func(step, want string) {
		t.Helper()
		var got string
		testenv.Eventually(t, 15*time.Second, func() bool {
			got = reached()
			return got == want
		}, "%s: reached %q, want %q", step, lazyString(func() string { return got }), want)
	}
	expect("two zones", "200 a | 200 a | a:10,b:20 | a:10,b:20")
	call(http.MethodPut, "/v1/services/web/instances/a/maintenance", map[string]any{"reason": "test"})
	expect("a in maintenance", "200 b | 200 b | b:20 | b:20")
	call(http.MethodDelete, "/v1/services/web/instances/a/maintenance", nil)
	expect("a back", "200 a | 200 a | a:10,b:20 | a:10,b:20")
}

// sortedKeys returns the keys of m, sorted and comma-separated.
func sortedKeys(m map[string]bool) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}
