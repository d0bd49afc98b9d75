package registrar_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// tokenFile writes a token file in a temporary directory.
func tokenFile(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, file, content)
	return file
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

const scopedTokens = `# NetSel tokens
web-token-0123456789 actions=register services=web-*,api name=web-deployer
ops-token-0123456789 actions=admin name=ops
dash-token-0123456789 actions=read name=dashboard
legacy-token-0123456789 register
`

func bearer(tok string) []string {
	if tok == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + tok}
}

// TestAuthScopes: a write needs a token whose actions and service patterns
// cover it: 401 without one or with an unknown one, 403 outside its scope,
// each as a JSON error naming the Authorization field.
func TestAuthScopes(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = tokenFile(t, scopedTokens) })
	inst := func(svc string) string { return reg.URL + "/v1/services/" + svc + "/instances" }
	body := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80}
	for _, tc := range []struct {
		name, method, url string
		body              any
		hdr               []string
		status            int
	}{
		{"no token", "POST", inst("web-1"), body, nil, 401},
		{"unknown token", "POST", inst("web-1"), body, bearer("nope"), 401},
		{"prefix of a token", "POST", inst("web-1"), body, bearer("web"), 401},
		{"not bearer", "POST", inst("web-1"), body, []string{"Authorization", "Basic d2ViOnRva2Vu"}, 401},
		{"empty bearer", "POST", inst("web-1"), body, []string{"Authorization", "Bearer "}, 401},
		{"lower-case scheme", "POST", inst("web-1"), body, []string{"Authorization", "bearer web-token-0123456789"}, 200},
		{"pattern match", "POST", inst("web-2"), body, bearer("web-token-0123456789"), 200},
		{"exact name", "POST", inst("api"), body, bearer("web-token-0123456789"), 200},
		{"outside patterns", "POST", inst("db"), body, bearer("web-token-0123456789"), 403},
		{"pattern is whole-name", "POST", inst("my-web-1"), body, bearer("web-token-0123456789"), 403},
		{"read-only token writes", "POST", inst("web-1"), body, bearer("dash-token-0123456789"), 403},
		{"heartbeat in scope", "PUT", inst("web-1") + "/a/heartbeat", nil, bearer("web-token-0123456789"), 200},
		{"heartbeat outside scope", "PUT", inst("db") + "/a/heartbeat", nil, bearer("web-token-0123456789"), 403},
		{"deregister outside scope", "DELETE", inst("db") + "/a", nil, bearer("web-token-0123456789"), 403},
		{"register token on admin", "DELETE", reg.URL + "/v1/services/web-2", nil, bearer("web-token-0123456789"), 403},
		{"legacy register token", "POST", inst("db"), body, bearer("legacy-token-0123456789"), 200},
		{"legacy register token on admin", "DELETE", reg.URL + "/v1/services/db", nil, bearer("legacy-token-0123456789"), 403},
		{"admin registers anything", "POST", inst("cache"), body, bearer("ops-token-0123456789"), 200},
		{"deregister in scope", "DELETE", inst("web-2") + "/a", nil, bearer("web-token-0123456789"), 204},
		{"admin deletes a service", "DELETE", reg.URL + "/v1/services/web-2", nil, bearer("ops-token-0123456789"), 204},
		{"reads are open", "GET", reg.URL + "/v1/services", nil, nil, 200},
		{"read a service, open", "GET", reg.URL + "/v1/services/api", nil, nil, 200},
	} {
		r := do(t, tc.method, tc.url, tc.body, tc.hdr...)
		if r.status != tc.status {
			t.Errorf("%s: %s %s: %d %s, want %d", tc.name, tc.method, tc.url, r.status, r.body, tc.status)
			continue
		}
		if tc.status == 401 || tc.status == 403 {
			if e := r.apiError(t); e.Field != "Authorization" || e.Error == "" {
				t.Errorf("%s: error body %s, want a message and field Authorization", tc.name, r.body)
			}
		}
		if got := r.header.Get("WWW-Authenticate"); (tc.status == 401) != (got != "") {
			t.Errorf("%s: WWW-Authenticate %q with status %d", tc.name, got, tc.status)
		}
	}
	// Refused writes left nothing behind: db has only legacy-token-0123456789's
	// instance, web-1 only the lower-case-scheme one.
	for _, k := range keys(t, etcd.Client) {
		if strings.Contains(k, "/instances/db/") && !strings.HasSuffix(k, "/db/a") {
			t.Errorf("unexpected key %s", k)
		}
	}
}

// TestAuthReads: with AuthReads, the /v1 reads need a token (any action
// includes read), while /v1/health and /metrics stay open.
func TestAuthReads(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, scopedTokens)
		c.AuthReads = true
	})
	list, one := reg.URL+"/v1/services", reg.URL+"/v1/services/web-1"
	if r := do(t, "POST", one+"/instances", api.RegisterRequest{Address: "127.0.0.1", Port: 80}, bearer("web-token-0123456789")...); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, url, token string
		status           int
	}{
		{"list without token", list, "", 401},
		{"service without token", one, "", 401},
		{"blocking without token", one + "?index=1&wait=1s", "", 401},
		{"unknown token", list, "nope", 401},
		{"read token", list, "dash-token-0123456789", 200},
		{"read token, any service", one, "dash-token-0123456789", 200},
		{"register token reads", one, "web-token-0123456789", 200},
		{"register token reads outside its patterns", reg.URL + "/v1/services/web-1", "legacy-token-0123456789", 200},
		{"admin token reads", list, "ops-token-0123456789", 200},
		{"health is open", reg.URL + "/v1/health", "", 200},
		{"metrics are open", reg.URL + "/metrics", "", 200},
	} {
		if r := do(t, "GET", tc.url, nil, bearer(tc.token)...); r.status != tc.status {
			t.Errorf("%s: GET %s: %d %s, want %d", tc.name, tc.url, r.status, r.body, tc.status)
		}
	}
}

// TestReloadTokens: ReloadTokens (the runner's SIGHUP) puts a new token file
// in force at once; a bad or missing file keeps the tokens loaded before.
func TestReloadTokens(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	file := tokenFile(t, "old-token-0123456789 actions=register\n")
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = file })
	url := reg.URL + "/v1/services/web/instances"
	body := api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80}
	expect := func(step, tok string, status int) {
		t.Helper()
		if r := do(t, "POST", url, body, bearer(tok)...); r.status != status {
			t.Errorf("%s: token %q: %d %s, want %d", step, tok, r.status, r.body, status)
		}
	}
	expect("before reload", "old-token-0123456789", 200)
	expect("before reload", "new-token-0123456789", 401)

	writeFile(t, file, "new-token-0123456789 actions=register services=web\n")
	if err := reg.Registrar.ReloadTokens(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	expect("after reload", "new-token-0123456789", 200)
	expect("after reload", "old-token-0123456789", 401)

	for _, bad := range []string{
		"new-token-0123456789 actions=bogus\n",
		"# only comments\n",
		"new-token-0123456789 services=web[\n",
		"a-0123456789abcdef register\na-0123456789abcdef admin\n",
		"new-token-0123456789 actions=register\nshort actions=admin\n",
		"new-token-0123456789 actions=register services=[!w]*\n",
	} {
		writeFile(t, file, bad)
		err := reg.Registrar.ReloadTokens()
		if err == nil || !strings.Contains(err.Error(), "keeping the 1 loaded before") {
			t.Errorf("reload of %q: %v, want an error keeping the old tokens", bad, err)
		}
		expect("after a bad reload", "new-token-0123456789", 200)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := reg.Registrar.ReloadTokens(); err == nil {
		t.Error("reload of a missing file succeeded")
	}
	expect("after the file is gone", "new-token-0123456789", 200)
}

// TestSecurityConfigErrors: New refuses inconsistent or unreadable security
// settings instead of starting open.
func TestSecurityConfigErrors(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	certs := testenv.NewCerts(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		set  func(*registrar.Config)
		want string
	}{
		{"missing token file", func(c *registrar.Config) { c.TokenFile = missing }, "token file"},
		{"empty token file", func(c *registrar.Config) { c.TokenFile = tokenFile(t, "\n# none\n") }, "holds no token"},
		{"bad action", func(c *registrar.Config) { c.TokenFile = tokenFile(t, "t-0123456789abcdef actions=write\n") }, `unknown action "write"`},
		{"short token", func(c *registrar.Config) {
			c.TokenFile = tokenFile(t, "ops-token-0123456789 actions=admin\n\nweb-token services=web\n")
		}, "line 3: the token has 9 characters, fewer than 16"},
		{"shell negation", func(c *registrar.Config) {
			c.TokenFile = tokenFile(t, "web-token-0123456789 services=web,[!w]*\n")
		}, `line 1: service pattern "[!w]*"`},
		{"auth reads without tokens", func(c *registrar.Config) { c.AuthReads = true }, "AuthReads needs a TokenFile"},
		{"cert without key", func(c *registrar.Config) { c.TLSCertFile = certs.ServerCertFile }, "go together"},
		{"client CA without cert", func(c *registrar.Config) { c.TLSClientCAFile = certs.CAFile }, "needs TLSCertFile"},
		{"key does not match", func(c *registrar.Config) {
			c.TLSCertFile, c.TLSKeyFile = certs.ServerCertFile, certs.ClientKeyFile
		}, "TLS certificate"},
		{"client CA not PEM", func(c *registrar.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile = certs.ServerCertFile, certs.ServerKeyFile, tokenFile(t, "x")
		}, "holds no PEM certificate"},
	} {
		cfg := registrar.Config{Client: etcd.Client}
		tc.set(&cfg)
		r, err := registrar.New(t.Context(), cfg)
		if err == nil {
			r.Close()
			t.Errorf("%s: New succeeded", tc.name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
