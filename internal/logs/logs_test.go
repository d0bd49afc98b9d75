package logs_test

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/netsel/netsel/internal/logs"
)

// records returns the JSON records written to buf.
func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestNew(t *testing.T) {
	if _, err := logs.New(&bytes.Buffer{}, "xml", slog.LevelInfo); err == nil {
		t.Error("format xml accepted")
	}
	for _, f := range []string{"", "text", "json", "JSON"} {
		if _, err := logs.New(&bytes.Buffer{}, f, slog.LevelInfo); err != nil {
			t.Errorf("format %q: %v", f, err)
		}
	}
	if _, err := logs.ParseLevel("loud"); err == nil {
		t.Error("level loud accepted")
	}
}

// TestStdWriter: CoreDNS's "[LEVEL] plugin/name: msg" lines become records
// of part dns at their level; other lines part go at info; the logger's
// level filters them.
func TestStdWriter(t *testing.T) {
	var buf bytes.Buffer
	l, _ := logs.New(&buf, "json", slog.LevelInfo)
	std := log.New(logs.StdWriter(l), "", 0)
	std.Print("[INFO] plugin/netsel: watching /netsel/")
	std.Print("[WARNING] plugin/errors: 2 x.netsel. A: timeout")
	std.Print("[DEBUG] plugin/netsel: dropped at info")
	std.Print("http: TLS handshake error from 127.0.0.1:1: EOF")
	std.Print("[ERROR] plugin/errors: 2 x.netsel. A: first line\nsecond line")
	got := records(t, &buf)
	want := []struct{ level, part, plugin, msg string }{
		{"INFO", "dns", "netsel", "watching /netsel/"},
		{"WARN", "dns", "errors", "2 x.netsel. A: timeout"},
		{"INFO", "go", "", "http: TLS handshake error from 127.0.0.1:1: EOF"},
		{"ERROR", "dns", "errors", "2 x.netsel. A: first line\nsecond line"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		plugin, _ := g["plugin"].(string)
		if g["level"] != w.level || g["part"] != w.part || plugin != w.plugin || g["msg"] != w.msg {
			t.Errorf("record %d = %v, want %+v", i, g, w)
		}
	}
}

// TestZapCore: zap entries keep their level, logger name and fields, and
// the slog handler's level decides.
func TestZapCore(t *testing.T) {
	var buf bytes.Buffer
	l, _ := logs.New(&buf, "json", slog.LevelInfo)
	z := logs.Zap(l.With("part", "etcd")).Named("raft").With(zap.String("member", "m0"))
	z.Debug("dropped")
	z.Warn("slow apply", zap.Int("took_ms", 120))
	got := records(t, &buf)
	if len(got) != 1 {
		t.Fatalf("records %v, want one", got)
	}
	g := got[0]
	if g["level"] != "WARN" || g["part"] != "etcd" || g["logger"] != "raft" || g["member"] != "m0" || g["took_ms"] != float64(120) || g["msg"] != "slow apply" {
		t.Errorf("record %v", g)
	}
}
