package registrar_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
)

// TestBadInput sends every kind of bad request and checks the status, the
// field named, and that nothing at all was written to etcd.
func TestBadInput(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	base := reg.URL + "/v1/services/"
	ok := `{"address":"127.0.0.1","port":8080}`
	withField := func(f string) string { return `{"address":"127.0.0.1","port":8080,` + f + `}` }

	tests := []struct {
		name        string
		method, url string
		body        string
		contentType string
		status      int
		field       string
	}{
		{"service name upper case", "POST", base + "Web/instances", ok, "", 400, "name"},
		{"service name underscore", "POST", base + "we_b/instances", ok, "", 400, "name"},
		{"service name too long", "POST", base + strings.Repeat("a", 64) + "/instances", ok, "", 400, "name"},
		{"service name leading dash", "POST", base + "-web/instances", ok, "", 400, "name"},
		{"id not a label", "POST", base + "web/instances", withField(`"id":"a.b"`), "", 400, "id"},
		{"port zero", "POST", base + "web/instances", `{"address":"127.0.0.1","port":0}`, "", 400, "port"},
		{"port missing", "POST", base + "web/instances", `{"address":"127.0.0.1"}`, "", 400, "port"},
		{"port too big", "POST", base + "web/instances", `{"address":"127.0.0.1","port":65536}`, "", 400, "port"},
		{"port negative", "POST", base + "web/instances", `{"address":"127.0.0.1","port":-1}`, "", 400, "port"},
		{"port a string", "POST", base + "web/instances", `{"address":"127.0.0.1","port":"80"}`, "", 400, "port"},
		{"named port too big", "POST", base + "web/instances", withField(`"ports":{"http":70000}`), "", 400, "ports.http"},
		{"named port bad name", "POST", base + "web/instances", withField(`"ports":{"HTTP":80}`), "", 400, "ports"},
		{"address a name", "POST", base + "web/instances", `{"address":"localhost","port":80}`, "", 400, "address"},
		{"address unspecified", "POST", base + "web/instances", `{"address":"0.0.0.0","port":80}`, "", 400, "address"},
		{"address with zone", "POST", base + "web/instances", `{"address":"fe80::1%eth0","port":80}`, "", 400, "address"},
		{"ttl too short", "POST", base + "web/instances", withField(`"ttl":"4s"`), "", 400, "ttl"},
		{"ttl too long", "POST", base + "web/instances", withField(`"ttl":"2h"`), "", 400, "ttl"},
		{"ttl seconds too long", "POST", base + "web/instances", withField(`"ttl":3601`), "", 400, "ttl"},
		{"ttl negative", "POST", base + "web/instances", withField(`"ttl":-5`), "", 400, "ttl"},
		{"ttl not a duration", "POST", base + "web/instances", withField(`"ttl":"soon"`), "", 400, "ttl"},
		{"weight too big", "POST", base + "web/instances", withField(`"weight":70000`), "", 400, "weight"},
		{"zone not a label", "POST", base + "web/instances", withField(`"zone":"Eu West"`), "", 400, "zone"},
		{"protocol unknown", "POST", base + "web/instances", withField(`"protocols":{"default":"quic"}`), "", 400, "protocols.default"},
		{"protocol of no port", "POST", base + "web/instances", withField(`"protocols":{"http":"http"}`), "", 400, "protocols"},
		{"protocol of default with named ports", "POST", base + "web/instances", withField(`"ports":{"http":80},"protocols":{"default":"http"}`), "", 400, "protocols"},
		{"protocols differ on one VIP port", "POST", base + "web/instances", withField(`"ports":{"a":80,"b":80},"protocols":{"b":"grpc"}`), "", 400, "protocols.b"},
		{"protocol not a string", "POST", base + "web/instances", withField(`"protocols":{"default":1}`), "", 400, "protocols"},
		{"empty tag", "POST", base + "web/instances", withField(`"tags":[""]`), "", 400, "tags[0]"},
		{"unknown field", "POST", base + "web/instances", withField(`"colour":"blue"`), "", 400, "colour"},
		{"not JSON", "POST", base + "web/instances", `address=127.0.0.1`, "", 400, "body"},
		{"truncated JSON", "POST", base + "web/instances", `{"address":"127.0.0.1",`, "", 400, "body"},
		{"JSON array", "POST", base + "web/instances", `[1,2]`, "", 400, "body"},
		{"empty body", "POST", base + "web/instances", ``, "", 400, "body"},
		{"two objects", "POST", base + "web/instances", ok + ok, "", 400, "body"},
		{"wrong content type", "POST", base + "web/instances", ok, "text/plain", 415, "Content-Type"},
		{"body too large", "POST", base + "web/instances", withField(`"meta":{"k":"` + strings.Repeat("x", 70<<10) + `"}`), "", 413, "body"},
		{"heartbeat bad id", "PUT", base + "web/instances/A_B/heartbeat", "", "", 400, "id"},
		{"heartbeat bad name", "PUT", base + "WEB/instances/a/heartbeat", "", "", 400, "name"},
		{"deregister bad id", "DELETE", base + "web/instances/a.b", "", "", 400, "id"},
		{"delete bad name", "DELETE", base + "Web", "", "", 400, "name"},
		{"get bad name", "GET", base + "Web", "", "", 400, "name"},
		{"bad index", "GET", base + "web?index=x", "", "", 400, "index"},
		{"bad wait", "GET", base + "web?index=1&wait=forever", "", "", 400, "wait"},
		{"heartbeat unknown", "PUT", base + "web/instances/nope/heartbeat", "", "", 404, ""},
		{"deregister unknown", "DELETE", base + "web/instances/nope", "", "", 404, ""},
		{"delete unknown service", "DELETE", base + "web", "", "", 404, ""},
		{"get unknown service", "GET", base + "web", "", "", 404, ""},
		{"unknown route", "GET", reg.URL + "/v2/nothing", "", "", 404, ""},
		{"wrong method", "PATCH", base + "web", "", "", 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.contentType != "" {
				hdr = append(hdr, "Content-Type", tc.contentType)
			}
			var body any
			if tc.body != "" || tc.method == "POST" {
				body = tc.body
			}
			r := do(t, tc.method, tc.url, body, hdr...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			e := r.apiError(t)
			if e.Field != tc.field || e.Error == "" {
				t.Errorf("error %+v, want field %q", e, tc.field)
			}
		})
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Errorf("bad requests wrote keys: %v", k)
	}
	if l := leases(t, etcd.Client); len(l) != 0 {
		t.Errorf("bad requests left %d leases", len(l))
	}
}

// TestPortConflict: later registrations must serve the ports the first set.
func TestPortConflict(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	url := reg.URL + "/v1/services/api/instances"
	first := register(t, reg.URL, "api", mustReq(`{"id":"a","address":"127.0.0.1","port":8080,"ports":{"http":8080,"grpc":9090}}`))
	if first.Port != 8080 || first.Ports["http"] != 8080 || first.Ports["grpc"] != 9090 {
		t.Fatalf("first registration got %+v", first)
	}
	// Different real port numbers are fine: virtual ports stay.
	second := register(t, reg.URL, "api", mustReq(`{"id":"b","address":"127.0.0.2","port":7000,"ports":{"http":7000,"grpc":7001}}`))
	if second.VIP != first.VIP || second.Port != 8080 || second.Ports["grpc"] != 9090 {
		t.Fatalf("second registration got %+v, first %+v", second, first)
	}
	before := keys(t, etcd.Client)
	nLeases := len(leases(t, etcd.Client))
	for _, tc := range []struct{ body, field string }{
		{`{"id":"c","address":"127.0.0.1","port":8080}`, "ports.grpc"},
		{`{"id":"c","address":"127.0.0.1","port":8080,"ports":{"http":8080}}`, "ports.grpc"},
		{`{"id":"c","address":"127.0.0.1","port":8080,"ports":{"http":1,"grpc":2,"admin":3}}`, "ports.admin"},
	} {
		r := do(t, "POST", url, tc.body)
		if r.status != http.StatusConflict || r.apiError(t).Field != tc.field {
			t.Errorf("%s: %d %s, want 409 field %s", tc.body, r.status, r.body, tc.field)
		}
	}
	if after := keys(t, etcd.Client); !slices.Equal(before, after) {
		t.Errorf("conflicting registrations changed keys: %v -> %v", before, after)
	}
	if n := len(leases(t, etcd.Client)); n != nLeases {
		t.Errorf("conflicting registrations left leases: %d -> %d", nLeases, n)
	}
}
