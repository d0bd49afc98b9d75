package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile parses arbitrary netsel blocks — the global option and the
// `dynamic netsel` upstream source — never panicking, and an app block that
// parses either validates or fails validation with an error.
func FuzzCaddyfile(f *testing.F) {
	f.Add("netsel {\n endpoint http://127.0.0.1:2379\n prefix /netsel/\n}")
	f.Add("netsel {\n vip_proxy {\n  dial_timeout 2s\n  policy least_conn\n  tries 3\n }\n health_checks {\n  interval 5s\n  path /healthz\n  fails 2\n }\n}")
	f.Add("netsel {\n tls a.pem b.pem c.pem\n username u\n password p\n}")
	f.Add("netsel {\n prefix nope\n}")
	f.Add("netsel {\n endpiont x\n}")
	f.Add("netsel {\n vip_proxy {\n  tries -1\n }\n}")
	f.Add("netsel {http.request.host.labels.1}")
	f.Fuzz(func(t *testing.T, input string) {
		var app App
		if err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil {
			if err := app.Validate(); err != nil && strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("empty validation error for %q", input)
			}
		}
		var up Upstreams
		_ = up.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}
