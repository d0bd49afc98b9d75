package registrar_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

// auditLine is a line of the audit log, as documented.
type auditLine struct {
	Time     time.Time `json:"time"`
	Who      string    `json:"who"`
	Cert     string    `json:"cert"`
	Remote   string    `json:"remote"`
	Action   string    `json:"action"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Service  string    `json:"service"`
	Instance string    `json:"instance"`
	Detail   string    `json:"detail"`
	Status   int       `json:"status"`
	Error    string    `json:"error"`
	Field    string    `json:"field"`
	Duration string    `json:"duration"`
}

// readAudit waits until file holds n lines, each one JSON object of the
// documented fields and nothing else, and returns them.
func readAudit(t *testing.T, file string, n int) []auditLine {
	t.Helper()
	var lines []auditLine
	testenv.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines = nil
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			var l auditLine
			if err := dec.Decode(&l); err != nil || dec.More() {
				t.Fatalf("audit line %q is not one JSON object of the documented fields: %v", sc.Text(), err)
			}
			lines = append(lines, l)
		}
		return len(lines) >= n
	}, "the audit log holds %d lines, want %d", len(lines), n)
	if len(lines) != n {
		t.Fatalf("the audit log holds %d lines, want %d: %+v", len(lines), n, lines)
	}
	return lines
}

// TestAuditLog: every write gets one line — who by token name (never the
// token), from where, what, and the answer — refusals included; heartbeats
// and reads get none; a name or id holding newlines and quotes stays inside
// its JSON string and cannot forge a line.
func TestAuditLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	_, reg := startSnapRegistrar(t, func(c *registrar.Config) { c.AuditLog = file })
	dep := bearer("web-token-0123456789")
	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
		want               auditLine
	}{
		{"POST", "/v1/services/web/instances", `{"id":"a1","address":"127.0.0.1","port":8080}`, dep, 200,
			auditLine{Who: "deployer", Action: "register", Service: "web", Instance: "a1"}},
		{"PUT", "/v1/services/web/instances/a1/heartbeat", "", dep, 200, auditLine{}},
		{"GET", "/v1/services/web", "", nil, 200, auditLine{}},
		{"PUT", "/v1/services/web/instances/a1/maintenance", `{"reason":"deploy"}`, dep, 204,
			auditLine{Who: "deployer", Action: "maintenance-on", Service: "web", Instance: "a1"}},
		{"DELETE", "/v1/services/web/instances/a1", "", dep, 204,
			auditLine{Who: "deployer", Action: "deregister", Service: "web", Instance: "a1"}},
		{"DELETE", "/v1/services/web", "", dep, 403,
			auditLine{Who: "deployer", Action: "delete-service", Service: "web", Field: "Authorization", Error: "may not admin"}},
		{"DELETE", "/v1/services/web", "", nil, 401,
			auditLine{Who: "anonymous", Action: "delete-service", Service: "web", Field: "Authorization"}},
		{"DELETE", "/v1/services/web", "", bearer("not-a-known-token-42"), 401,
			auditLine{Who: "unknown token", Action: "delete-service", Service: "web", Field: "Authorization"}},
		{"DELETE", "/v1/services/web", "", ops, 204,
			auditLine{Who: "ops", Action: "delete-service", Service: "web"}},
		{"POST", "/v1/services/web%0A%7B%22who%22:%22ops%22%7D/instances", `{"id":"x","address":"127.0.0.1","port":80}`, dep, 400,
			auditLine{Who: "deployer", Action: "register", Service: "web\n{\"who\":\"ops\"}", Instance: "x", Field: "name"}},
		{"POST", "/v1/services/web/instances", `{"id":"x\"}\n{\"who\":\"ops\",\"action\":\"x","address":"127.0.0.1","port":80}`, dep, 400,
			auditLine{Who: "deployer", Action: "register", Service: "web", Instance: "x\"}\n{\"who\":\"ops\",\"action\":\"x", Field: "id"}},
		{"GET", "/v1/backup", "", ops, 200, auditLine{Who: "ops", Action: "snapshot-save"}},
		{"PUT", "/v1/backup", `{"version":1,"services":[]}`, ops, 200,
			auditLine{Who: "ops", Action: "snapshot-restore", Detail: "0 services, force=false"}},
	}
	var want []auditLine
	for _, s := range steps {
		var body any
		if s.body != "" {
			body = s.body
		}
		r := do(t, s.method, reg.URL+s.path, body, s.hdr...)
		if r.status != s.status {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, r.status, r.body, s.status)
		}
		if s.want.Action != "" {
			w := s.want
			w.Method, w.Path, w.Status = s.method, s.path, s.status
			want = append(want, w)
		}
	}
	lines := readAudit(t, file, len(want))
	for i, got := range lines {
		w := want[i]
		if got.Who != w.Who || got.Action != w.Action || got.Method != w.Method || got.Status != w.Status ||
			got.Service != w.Service || got.Instance != w.Instance || got.Field != w.Field || got.Detail != w.Detail ||
			!strings.Contains(got.Error, w.Error) || (w.Status >= 400) != (got.Error != "") {
			t.Errorf("line %d = %+v\nwant %+v", i, got, w)
		}
		if !strings.HasPrefix(got.Remote, "127.0.0.1:") || time.Since(got.Time) > time.Minute || got.Duration == "" {
			t.Errorf("line %d: remote %q, time %v, duration %q", i, got.Remote, got.Time, got.Duration)
		}
	}
	b, _ := os.ReadFile(file)
	if strings.Contains(string(b), "token-0123456789") || strings.Contains(string(b), "not-a-known-token") {
		t.Errorf("the audit log holds a token:\n%s", b)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode: %v %v, want 0600", fi.Mode(), err)
	}
}

// TestAuditLogAppends: a registrar started again appends to the audit log;
// heartbeats are in it with AuditHeartbeats.
func TestAuditLogAppends(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	writeFile(t, file, `{"time":"2026-01-01T00:00:00Z","who":"before","remote":"","action":"register","method":"POST","path":"/","status":200,"duration":"1ms"}`+"\n")
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.AuditLog, c.AuditHeartbeats = file, true })
	register(t, reg.URL, "web", mustReq(`{"id":"a1","address":"127.0.0.1","port":8080}`))
	if r := do(t, "PUT", reg.URL+"/v1/services/web/instances/a1/heartbeat", nil); r.status != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	lines := readAudit(t, file, 3)
	if lines[0].Who != "before" || lines[1].Action != "register" || lines[1].Who != "anonymous" || lines[2].Action != "heartbeat" {
		t.Errorf("lines = %+v", lines)
	}
}

// TestAuditLogClientCert: under mutual TLS with no token file, who is the
// client certificate's subject.
func TestAuditLogClientCert(t *testing.T) {
	certs := testenv.NewCerts(t)
	file := filepath.Join(t.TempDir(), "audit.log")
	_, url := startTLSRegistrar(t, certs, true, func(c *registrar.Config) { c.AuditLog = file })
	c := newClient(t, client.Config{URLs: []string{url}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile})
	if err := c.Deregister(t.Context(), "web", "a1"); err != nil {
		t.Fatalf("deregister of no instance: %v (a 404 is nil)", err)
	}
	l := readAudit(t, file, 1)[0]
	if l.Who != "CN=netsel-client" || l.Cert != "CN=netsel-client" || l.Action != "deregister" || l.Status != http.StatusNotFound || l.Error == "" {
		t.Errorf("line = %+v, want who CN=netsel-client, deregister, 404", l)
	}
}
