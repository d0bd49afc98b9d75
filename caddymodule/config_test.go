package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestModulesRegistered(t *testing.T) {
	for _, id := range []string{
		"netsel",
		"http.reverse_proxy.upstreams.netsel",
		"http.reverse_proxy.selection_policies.netsel_weighted",
		"http.handlers.netsel",
		"layer4.handlers.netsel",
	} {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s: %v", id, err)
		}
	}
}

func TestJSONConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, app, want string
	}{
		{"unknown key", `{"endpoints":["http://127.0.0.1:2379"],"bogus":1}`, "bogus"},
		{"bad endpoint", `{"endpoints":["127.0.0.1:2379"]}`, "endpoints[0]"},
		{"endpoint scheme", `{"endpoints":["ftp://127.0.0.1:2379"]}`, "scheme must be http, https, unix or unixs"},
		{"endpoint no port", `{"endpoints":["http://127.0.0.1"]}`, "needs host:port"},
		{"prefix without slash", `{"prefix":"netsel"}`, "prefix"},
		{"prefix without trailing slash", `{"prefix":"/netsel"}`, "must start and end with '/'"},
		{"tls half", `{"tls":{"cert":"c.pem"}}`, "cert and key must be given together"},
		{"vip policy", `{"vip_proxy":{"enabled":true,"policy":"fastest"}}`, "fastest"},
		{"health path", `{"health_checks":{"path":"healthz"}}`, "must start with '/'"},
		{"vip unknown key", `{"vip_proxy":{"enabled":true,"port":1}}`, "port"},
		{"vip max_conns", `{"vip_proxy":{"enabled":true,"max_conns":-2}}`, "max_conns"},
		{"vip header_timeout", `{"vip_proxy":{"enabled":true,"header_timeout":-1}}`, "header_timeout"},
		{"dial policy vip cidr", `{"dial_policy":{"vip_cidrs":["127.77.0.0/33"]}}`, "dial_policy: vip_cidrs[0]"},
		{"dial policy allow", `{"dial_policy":{"allow":["10.0.0.0/8","nope"]}}`, "dial_policy: allow[1]"},
		{"dial policy deny", `{"dial_policy":{"deny":["fe80::1%eth0"]}}`, "dial_policy: deny[0]"},
		{"dial policy reserved port", `{"dial_policy":{"reserved":["127.0.0.1"]}}`, "dial_policy: reserved[0]"},
		{"dial policy reserved zero", `{"dial_policy":{"reserved":[":0"]}}`, "dial_policy: reserved[0]"},
		{"dial policy unknown key", `{"dial_policy":{"vips":["127.77.0.0/16"]}}`, "vips"},
		{"zone empty", `{"zones":["netsel","."]}`, "zones[1] is empty"},
		{"zone not a domain", `{"zones":["net sel"]}`, "zones[0]"},
		{"locality not a label", `{"locality":"eu.west"}`, `locality: "eu.west" is not a DNS label`},
		{"locality upper case", `{"locality":"AZ1"}`, `locality: "AZ1" is not a DNS label`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"netsel":` + tc.app + `}}`
			err := caddy.Load([]byte(cfg), true)
			if err == nil {
				caddy.Stop()
				t.Fatalf("config %s loaded", tc.app)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func adapt(t *testing.T, body string) (string, error) {
	t.Helper()
	out, _, err := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt([]byte(body), nil)
	return string(out), err
}

func TestCaddyfile(t *testing.T) {
	out, err := adapt(t, `{
	netsel {
		endpoint http://127.0.0.1:2379 http://127.0.0.2:2379
		prefix /ns/
		username u
		password p
		tls cert.pem key.pem ca.pem
		dial_timeout 3s
		vip_proxy {
			dial_timeout 1s
			policy least_conn
			tries 2
			bind_retry 1s
			max_listeners 100
			max_conns_per_listener 10
			max_conns 500
			idle_timeout 1m
			header_timeout 5s
		}
		health_checks {
			interval 2s
			timeout 1s
			path /healthz
			port http
			fails 2
		}
		dial_policy {
			vip_cidrs 127.77.0.0/16
			reserved 127.0.0.1:9000 :8081 http://127.0.0.1:2379
			allow 127.0.0.0/8 10.0.0.0/8
			deny 10.9.0.0/16
		}
		zones netsel svc.example.com
		locality eu-west-1a
	}
}
http://:8081 {
	netsel {http.request.header.X-Service}
	reverse_proxy {
		dynamic netsel {http.request.header.X-Service} {
			window 16
		}
		lb_policy netsel_weighted
	}
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"endpoints":["http://127.0.0.1:2379","http://127.0.0.2:2379"]`,
		`"prefix":"/ns/"`,
		`"tls":{"cert":"cert.pem","key":"key.pem","ca":"ca.pem"}`,
		`"vip_proxy":{"enabled":true,"dial_timeout":1000000000,"policy":"least_conn","tries":2,"bind_retry":1000000000,"max_listeners":100,"max_conns_per_listener":10,"max_conns":500,"idle_timeout":60000000000,"header_timeout":5000000000}`,
		`"health_checks":{"interval":2000000000,"timeout":1000000000,"path":"/healthz","port":"http","fails":2}`,
		`"dial_policy":{"vip_cidrs":["127.77.0.0/16"],"reserved":["127.0.0.1:9000",":8081","http://127.0.0.1:2379"],"allow":["127.0.0.0/8","10.0.0.0/8"],"deny":["10.9.0.0/16"]}`,
		`"zones":["netsel","svc.example.com"]`,
		`"locality":"eu-west-1a"`,
		`{"handler":"netsel","service":"{http.request.header.X-Service}"}`,
		`"dynamic_upstreams":{"service":"{http.request.header.X-Service}","source":"netsel","window":16}`,
		`"selection_policy":{"policy":"netsel_weighted"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
	// The netsel handler runs before reverse_proxy.
	if strings.Index(out, `"handler":"netsel"`) > strings.Index(out, `"handler":"reverse_proxy"`) {
		t.Errorf("netsel handler ordered after reverse_proxy:\n%s", out)
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown option", "{\n netsel {\n  endpiont http://127.0.0.1:2379\n }\n}", "endpiont"},
		{"unknown vip option", "{\n netsel {\n  vip_proxy {\n   listen 1\n  }\n }\n}", "listen"},
		{"vip max_conns zero", "{\n netsel {\n  vip_proxy {\n   max_conns 0\n  }\n }\n}", "max_conns"},
		{"unknown health option", "{\n netsel {\n  health_checks {\n   every 1s\n  }\n }\n}", "every"},
		{"unknown dial_policy option", "{\n netsel {\n  dial_policy {\n   permit 10.0.0.0/8\n  }\n }\n}", "permit"},
		{"dial_policy empty", "{\n netsel {\n  dial_policy {\n   deny\n  }\n }\n}", "needs at least one value"},
		{"zones empty", "{\n netsel {\n  zones\n }\n}", "needs at least one domain"},
		{"locality arity", "{\n netsel {\n  locality a b\n }\n}", "locality takes one argument"},
		{"bad duration", "{\n netsel {\n  dial_timeout soon\n }\n}", "soon"},
		{"tls arity", "{\n netsel {\n  tls cert.pem\n }\n}", "tls takes"},
		{"prefix arity", "{\n netsel {\n  prefix\n }\n}", "prefix takes one argument"},
		{"upstream args", "http://:8081 {\n reverse_proxy {\n  dynamic netsel a b\n }\n}", "wrong argument count"},
		{"upstream window", "http://:8081 {\n reverse_proxy {\n  dynamic netsel {\n   window 0\n  }\n }\n}", "window"},
		{"upstream option", "http://:8081 {\n reverse_proxy {\n  dynamic netsel {\n   windw 8\n  }\n }\n}", "windw"},
		{"upstream tags empty", "http://:8081 {\n reverse_proxy {\n  dynamic netsel {\n   tags\n  }\n }\n}", "tags: needs at least one tag"},
		{"upstream tags_header arity", "http://:8081 {\n reverse_proxy {\n  dynamic netsel {\n   tags_header A B\n  }\n }\n}", "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestServiceFor(t *testing.T) {
	a := &App{zones: normalZones([]string{"netsel", "Svc.Example.COM."})}
	for _, tc := range []struct {
		host, template, want string
		inZone               bool
	}{
		{"web.netsel", "", "web", true},
		{"web.netsel:8081", "", "web", true},
		{"WEB.NetSel.", "", "web", true},
		{"web.netsel.:8081", "", "web", true},
		{"api.svc.example.com", "", "api", true},
		{"-x-.netsel", "", "", true},
		{"a.b.netsel", "", "", true}, // a service is one label
		{"netsel", "", "", false},
		{"WEB.example.com", "", "", false},
		{"web", "", "", false},
		{"web:80", "", "", false},
		{"web.netselx", "", "", false},
		{"webnetsel", "", "", false},
		{"[::1]:80", "", "", false},
		{"127.0.0.1", "", "", false},
		{"127.0.0.1:8081", "", "", false},
		{"under_score.tld", "", "", false},
		// The explicit template form names the service whatever the host.
		{"web.netsel", "{svc}", "api", true},
		{"127.0.0.1", "fixed", "fixed", true},
		{"web.netsel", "{missing}", "", true},
		{"web.netsel", "{svc}.netsel", "api", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = tc.host
		repl := caddy.NewReplacer()
		repl.Set("svc", "API")
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		if got, in := a.serviceFor(r, tc.template); got != tc.want || in != tc.inZone {
			t.Errorf("serviceFor(host %q, %q) = %q, %v; want %q, %v", tc.host, tc.template, got, in, tc.want, tc.inZone)
		}
	}
}

// TestJSONConfigEmptyCA checks that an etcd CA file without certificates
// stops the config at load, as the runner's own flags do, instead of
// failing every TLS handshake to etcd later.
func TestJSONConfigEmptyCA(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `{"admin":{"disabled":true,"config":{"persist":false}},"apps":{"netsel":{"endpoints":["https://127.0.0.1:2379"],"tls":{"ca":` + strconv.Quote(ca) + `}}}}`
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		caddy.Stop()
		t.Fatal("config with an empty CA file loaded")
	}
	if !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("error %q does not say the CA file holds no certificate", err)
	}
}
