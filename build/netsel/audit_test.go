package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// TestStackAuditLog: "netsel serve -audit-log FILE" writes a JSON line for
// each registrar write made through the CLI, snapshot save included, and
// none for reads.
func TestStackAuditLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	var parsed serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	parsed.register(fs)
	if err := fs.Parse([]string{"-audit-log", file}); err != nil || parsed.auditLog != file || parsed.auditBeats {
		t.Fatalf("-audit-log %s parsed as %q, heartbeats %v (%v)", file, parsed.auditLog, parsed.auditBeats, err)
	}
	f := stackFlags(t, "127.78.0.0/16")
	f.auditLog = parsed.auditLog
	runTestStack(t, f)
	r := "http://" + f.registrar
	for _, args := range [][]string{
		{"register", "web", "-port", "8080", "-once", "-id", "a1"},
		{"services"},
		{"deregister", "web", "a1"},
		{"snapshot", "save", filepath.Join(t.TempDir(), "snap.json")},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append(args, "-registrar", r), &stdout, &stderr); code != 0 {
			t.Fatalf("netsel %q: exit %d: %s", args, code, &stderr)
		}
	}
	want := []string{"register web a1 200", "deregister web a1 204", "snapshot-save   200"}
	var got []string
	testenv.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		for line := range strings.Lines(string(b)) {
			var l struct {
				Who, Action, Service, Instance string
				Status                         int
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil || l.Who != "anonymous" {
				t.Fatalf("audit line %q: %v", line, err)
			}
			got = append(got, strings.Join([]string{l.Action, l.Service, l.Instance, strconv.Itoa(l.Status)}, " "))
		}
		return len(got) >= len(want)
	}, "audit log lines %q, want %q", got, want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log lines %q, want %q", got, want)
	}
}
