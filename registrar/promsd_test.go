package registrar_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// sdGroup is a target group of GET /v1/sd/prometheus.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// labelName is Prometheus's rule for label names.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// getSD fetches GET /v1/sd/prometheus with query, checks it is a 200 in
// JSON whose label names are all valid, and returns the groups by target.
func getSD(t *testing.T, base, query string, hdr ...string) map[string]sdGroup {
	t.Helper()
	r := do(t, "GET", base+"/v1/sd/prometheus"+query, nil, hdr...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/sd/prometheus%s: %d %s", query, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !strings.HasPrefix(string(r.body), "[") {
		t.Fatalf("answer is not a JSON array: %.200s", r.body)
	}
	var groups []sdGroup
	r.decode(t, &groups)
	out := map[string]sdGroup{}
	for _, g := range groups {
		if len(g.Targets) != 1 {
			t.Errorf("group with %d targets, want one per instance: %+v", len(g.Targets), g)
			continue
		}
		for name := range g.Labels {
			if !labelName.MatchString(name) {
				t.Errorf("target %s: label name %q is not a valid Prometheus label name", g.Targets[0], name)
			}
		}
		out[g.Targets[0]] = g
	}
	return out
}

func targets(groups map[string]sdGroup) []string {
	var ts []string
	for t := range groups {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// registerSDExamples registers web/a (named ports http and metrics, tags
// and meta) and db/b (one port, in maintenance).
func registerSDExamples(t *testing.T, base string) (webVIP string) {
	t.Helper()
	a := register(t, base, "web", api.RegisterRequest{
		ID: "a", Address: "127.0.0.1", Port: 8080, Ports: map[string]int{"http": 8080, "metrics": 9100},
		Tags: []string{"prod", "a-b.c"}, Meta: map[string]string{"version": "1.2", "team": "edge"}, Zone: "z1",
	})
	register(t, base, "db", api.RegisterRequest{ID: "b", Address: "127.0.0.2", Port: 5432})
	if r := do(t, "PUT", base+"/v1/services/db/instances/b/maintenance", api.MaintenanceRequest{Reason: "disk"}); r.status != http.StatusNoContent {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	return a.VIP.String()
}

// TestPrometheusSD: every live instance is a target group of its own with
// the __meta_netsel_ labels, whatever its state (db/b is in maintenance).
func TestPrometheusSD(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	if got := do(t, "GET", reg.URL+"/v1/sd/prometheus", nil); got.status != 200 || strings.TrimSpace(string(got.body)) != "[]" {
		t.Fatalf("empty catalog: %d %s, want 200 []", got.status, got.body)
	}
	vip := registerSDExamples(t, reg.URL)
	groups := getSD(t, reg.URL, "")
	if want := []string{"127.0.0.1:8080", "127.0.0.2:5432"}; !slices.Equal(targets(groups), want) {
		t.Fatalf("targets %v, want %v", targets(groups), want)
	}
	web := groups["127.0.0.1:8080"].Labels
	for name, want := range map[string]string{
		"__meta_netsel_service":      "web",
		"__meta_netsel_id":           "a",
		"__meta_netsel_zone":         "z1",
		"__meta_netsel_vip":          vip,
		"__meta_netsel_state":        "passing",
		"__meta_netsel_tags":         ",prod,a-b.c,",
		"__meta_netsel_tag_prod":     "true",
		"__meta_netsel_tag_a_b_c":    "true",
		"__meta_netsel_meta_version": "1.2",
		"__meta_netsel_meta_team":    "edge",
	} {
		if got, ok := web[name]; !ok || got != want {
			t.Errorf("web/a label %s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	db := groups["127.0.0.2:5432"].Labels
	if db["__meta_netsel_service"] != "db" || db["__meta_netsel_state"] != "maintenance" || db["__meta_netsel_tags"] != "" {
		t.Errorf("db/b labels %v, want service db in maintenance with no tags", db)
	}
}

// TestPrometheusSDPortAndService: ?port= targets a named port and leaves
// out services without it; ?service= keeps only the services named; a
// malformed value is a 400 naming its parameter.
func TestPrometheusSDPortAndService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	registerSDExamples(t, reg.URL)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?port=metrics", []string{"127.0.0.1:9100"}},
		{"?port=http", []string{"127.0.0.1:8080"}},
		{"?port=default", []string{"127.0.0.2:5432"}},
		{"?port=nope", nil},
		{"?service=db", []string{"127.0.0.2:5432"}},
		{"?service=web&service=db&service=web", []string{"127.0.0.1:8080", "127.0.0.2:5432"}},
		{"?service=web&port=metrics", []string{"127.0.0.1:9100"}},
		{"?service=db&port=metrics", nil},
		{"?service=unknown", nil},
		{"?stale", []string{"127.0.0.1:8080", "127.0.0.2:5432"}},
	} {
		if got := targets(getSD(t, reg.URL, tc.query)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: targets %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, tc := range []struct{ query, field string }{
		{"?port=", "port"},
		{"?port=Metrics_Port", "port"},
		{"?port=" + strings.Repeat("a", 64), "port"},
		{"?service=", "service"},
		{"?service=web&service=a.b", "service"},
	} {
		r := do(t, "GET", reg.URL+"/v1/sd/prometheus"+tc.query, nil)
		if r.status != http.StatusBadRequest || r.apiError(t).Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.query, r.status, r.body, tc.field)
		}
	}
}

// TestPrometheusSDHostileNames: tags and meta keys that are no label
// names (dots, dashes, non-ASCII, control characters, the longest a
// registration allows) become valid label names, one "_" per character as
// Prometheus's own discovery makes them; values are carried as given; two
// meta keys that make one name give it the same value on every build.
func TestPrometheusSDHostileNames(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	longTag := strings.Repeat("ü-", 84) + "xyz" // 255 bytes, 171 characters
	longKey := strings.Repeat("k.", 64)         // 128 bytes
	hostileValue := "<script>\"\\\x01\u2028"
	register(t, reg.URL, "web", api.RegisterRequest{
		ID: "a", Address: "::1", Port: 8080,
		Tags: []string{"a-b.c", longTag, "9lives", "\x7f\ttab"},
		Meta: map[string]string{"ü": "umlaut", longKey: hostileValue, "a-b": "dash", "a.b": "dot", "a_b": "underscore"},
	})
	// Twice over, on two snapshots: the colliding meta keys must not flip.
	for i := range 2 {
		groups := getSD(t, reg.URL, "")
		l := groups["[::1]:8080"].Labels
		if l == nil {
			t.Fatalf("no target [::1]:8080 in %v", targets(groups))
		}
		for name, want := range map[string]string{
			"__meta_netsel_tag_a_b_c":                               "true",
			"__meta_netsel_tag_" + strings.Repeat("__", 84) + "xyz": "true",
			"__meta_netsel_tag_9lives":                              "true",
			"__meta_netsel_tag___tab":                               "true",
			"__meta_netsel_meta__":                                  "umlaut",
			"__meta_netsel_meta_" + strings.Repeat("k_", 64):        hostileValue,
			"__meta_netsel_meta_a_b":                                "dash", // "a-b" < "a.b" < "a_b"
			"__meta_netsel_tags":                                    ",a-b.c," + longTag + ",9lives,\x7f\ttab,",
		} {
			if got, ok := l[name]; !ok || got != want {
				t.Errorf("build %d: label %.60s = %q (present %v), want %.60q", i, name, got, ok, want)
			}
		}
		register(t, reg.URL, "other", api.RegisterRequest{ID: "o" + string(rune('a'+i)), Address: "127.0.0.3", Port: 81 + i})
	}
}

// TestPrometheusSDAuthReads: with AuthReads the discovery needs a token
// like every other read; without it, none.
func TestPrometheusSDAuthReads(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, scopedTokens)
		c.AuthReads = true
	})
	url := reg.URL + "/v1/sd/prometheus"
	for _, tc := range []struct {
		token  string
		status int
	}{
		{"", http.StatusUnauthorized},
		{"nope-nope-nope-nope", http.StatusUnauthorized},
		{"dash-token-0123456789", http.StatusOK},
		{"web-token-0123456789", http.StatusOK},
	} {
		if r := do(t, "GET", url, nil, bearer(tc.token)...); r.status != tc.status {
			t.Errorf("token %q: %d %s, want %d", tc.token, r.status, r.body, tc.status)
		}
	}
	open := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = tokenFile(t, scopedTokens) })
	if r := do(t, "GET", open.URL+"/v1/sd/prometheus", nil); r.status != http.StatusOK {
		t.Errorf("without AuthReads: %d %s, want 200", r.status, r.body)
	}
}

// TestPrometheusSDBeforeSync: a registrar that has not read etcd yet (it
// is cut off) answers 503 with Retry-After, not an empty list, which
// would make Prometheus drop every target; once it reads etcd it answers.
func TestPrometheusSDBeforeSync(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	seed := testenv.StartRegistrar(t, etcd.URL)
	register(t, seed.URL, "web", api.RegisterRequest{ID: "a", Address: "127.0.0.1", Port: 80})

	proxy := testenv.StartProxy(t, strings.TrimPrefix(etcd.URL, "http://"))
	proxy.Cut()
	reg := testenv.StartRegistrar(t, "http://"+proxy.Addr(), func(c *registrar.Config) {
		c.Checks.Disabled = true
	})
	r := do(t, "GET", reg.URL+"/v1/sd/prometheus", nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("before the index read etcd: %d %s (Retry-After %q), want 503 with Retry-After",
			r.status, r.body, r.header.Get("Retry-After"))
	}
	proxy.Restore()
	testenv.Eventually(t, 20*time.Second, func() bool {
		return do(t, "GET", reg.URL+"/v1/sd/prometheus", nil).status == http.StatusOK
	}, "the registrar never answered once etcd was reachable")
	if got := targets(getSD(t, reg.URL, "")); !slices.Equal(got, []string{"127.0.0.1:80"}) {
		t.Errorf("after sync: targets %v, want [127.0.0.1:80]", got)
	}
}
