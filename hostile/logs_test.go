package hostile

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestOneLogStream: every line the runner writes, from every part, is one
// record in the format asked for, with a part= naming its part, and no
// terminal colour codes; the DNS query log and the HTTP access log are
// opt-in and join the same stream.
func TestOneLogStream(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			r := startRunner(t, withFlags("-log-format", format, "-log-level", "debug", "-dns-query-log", "-http-access-log"))
			if killed := r.proc.Stop(os.Interrupt, 30*time.Second); killed {
				t.Fatal("runner did not stop within 30s of SIGINT")
			}
			parts := map[string]int{}
			var queryLog, accessLog bool
			for _, line := range strings.Split(strings.TrimSpace(r.logs.String()), "\n") {
				if strings.ContainsRune(line, '\x1b') {
					t.Errorf("line with a terminal escape code: %q", line)
				}
				part, msg, ok := record(format, line)
				if !ok || part == "" {
					t.Errorf("line is not a %s record with a part: %q", format, line)
					continue
				}
				parts[part]++
				queryLog = queryLog || part == "dns" && strings.Contains(msg, "canary.netsel.")
				accessLog = accessLog || part == "caddy" && strings.Contains(line, "http.log.access")
			}
			for _, p := range []string{"netsel", "etcd", "registrar", "dns", "caddy"} {
				if parts[p] == 0 {
					t.Errorf("no record of part %s; parts seen: %v", p, parts)
				}
			}
			if !queryLog {
				t.Error("no DNS query log record of canary.netsel.")
			}
			if !accessLog {
				t.Error("no HTTP access log record")
			}
		})
	}
}

// record parses line as one record of format and returns its part and
// message; for text, the message is the whole line.
func record(format, line string) (part, msg string, ok bool) {
	if format == "json" {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return "", "", false
		}
		part, _ = m["part"].(string)
		msg, _ = m["msg"].(string)
		return part, msg, m["time"] != nil && m["level"] != nil
	}
	if !strings.HasPrefix(line, "time=") || !strings.Contains(line, " level=") {
		return "", "", false
	}
	_, after, found := strings.Cut(line, " part=")
	if !found {
		return "", line, true
	}
	part, _, _ = strings.Cut(after, " ")
	return part, line, true
}
