package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestCLISnapshot: "netsel snapshot save" then "restore" give back the
// services and VIPs after they were deleted; a restore over services
// without -force exits 1 saying why, with -force it replaces them; a
// corrupt file, or a token that is not admin, exits 1 with the registrar's
// reason; a missing FILE is a usage error.
func TestCLISnapshot(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("tokens", "ops-token-0123456789 actions=admin name=ops\nreg-token-0123456789 actions=register name=deployer\n")
	admin, deployer := write("admin.tok", "ops-token-0123456789\n"), write("reg.tok", "reg-token-0123456789\n")
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.TokenFile = tokens })
	cli := func(token string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, "-registrar", reg.URL, "-token-file", token), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	vips := func() map[string]string {
		t.Helper()
		code, out, errs := cli(admin, "services", "-json")
		var list api.ServiceList
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("services: exit %d %s %s", code, out, errs)
		}
		m := map[string]string{}
		for _, s := range list.Services {
			m[s.Name] = s.VIP.String()
		}
		return m
	}
	for _, svc := range []string{"web", "api"} {
		if code, _, errs := cli(deployer, "register", svc, "-port", "8080", "-once", "-id", "i1"); code != 0 {
			t.Fatalf("register %s: exit %d %s", svc, code, errs)
		}
	}
	want := vips()
	file := filepath.Join(dir, "snap.json")
	if code, out, errs := cli(admin, "snapshot", "save", file); code != 0 || !strings.Contains(out, "saved 2 services") {
		t.Fatalf("snapshot save: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := cli(deployer, "snapshot", "save", filepath.Join(dir, "other.json")); code != 1 || !strings.Contains(errs, "403") {
		t.Errorf("snapshot save with a register token: exit %d %q, want 1 and a 403", code, errs)
	}
	for svc := range want {
		if code, _, errs := cli(admin, "deregister", svc, "i1"); code != 0 {
			t.Fatalf("deregister: %s", errs)
		}
		if code, _, errs := cli(admin, "delete-service", svc); code != 0 {
			t.Fatalf("delete-service: %s", errs)
		}
	}
	if code, out, errs := cli(admin, "snapshot", "restore", file); code != 0 || !strings.Contains(out, "restored 2 services") {
		t.Fatalf("snapshot restore: exit %d %q %q", code, out, errs)
	}
	if got := vips(); len(got) != 2 || got["web"] != want["web"] || got["api"] != want["api"] {
		t.Errorf("after the restore the services are %v, want %v", got, want)
	}
	code, _, errs := cli(admin, "snapshot", "restore", file)
	if code != 1 || !strings.Contains(errs, "409") || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "force") {
		t.Errorf("restore over services without -force: exit %d %q, want 1 and why", code, errs)
	}
	if code, out, errs := cli(admin, "snapshot", "restore", "-force", file); code != 0 || !strings.Contains(out, "replaced 2") {
		t.Errorf("restore -force: exit %d %q %q", code, out, errs)
	}
	bad := write("bad.json", strings.Replace(readFile(t, file), want["web"], "10.1.2.3", 1))
	if code, _, errs := cli(admin, "snapshot", "restore", "-force", bad); code != 1 || !strings.Contains(errs, ".vip") || !strings.Contains(errs, "400") {
		t.Errorf("restore of a VIP outside the range: exit %d %q, want 1 and a 400 naming the VIP", code, errs)
	}
	notJSON := write("cut.json", readFile(t, file)[:40])
	if code, _, errs := cli(admin, "snapshot", "restore", notJSON); code != 1 || !strings.Contains(errs, "not a JSON snapshot") {
		t.Errorf("restore of a truncated file: exit %d %q", code, errs)
	}
	for _, args := range [][]string{{"snapshot"}, {"snapshot", "restore"}, {"snapshot", "save", "a", "b"}, {"snapshot", "load", file}} {
		if code, _, _ := cli(admin, args...); code != 2 {
			t.Errorf("netsel %q: exit %d, want 2", args, code)
		}
	}
	if got := vips(); got["web"] != want["web"] || got["api"] != want["api"] {
		t.Errorf("refused restores changed the services: %v, want %v", got, want)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
