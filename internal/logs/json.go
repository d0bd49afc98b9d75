package logs

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"
)

// JSONWriter returns a writer taking zap JSON lines (Caddy's "json"
// encoder: ts, level, logger, msg and fields) and writing each as a record
// of l. A line that is not such JSON is logged as its text.
func JSONWriter(l *slog.Logger) *LineWriter {
	return &LineWriter{handle: func(line []byte) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			l.Info(string(line))
			return
		}
		level := slog.LevelInfo
		if s, ok := m["level"].(string); ok {
			switch strings.ToLower(s) {
			case "debug":
				level = slog.LevelDebug
			case "warn", "warning":
				level = slog.LevelWarn
			case "error", "dpanic", "panic", "fatal":
				level = slog.LevelError
			}
		}
		if !l.Enabled(context.Background(), level) {
			return
		}
		at := time.Now()
		if ts, ok := m["ts"].(float64); ok {
			at = time.Unix(0, int64(ts*1e9))
		}
		msg, _ := m["msg"].(string)
		delete(m, "ts")
		delete(m, "level")
		delete(m, "msg")
		r := slog.NewRecord(at, level, msg, 0)
		if name, ok := m["logger"].(string); ok {
			r.AddAttrs(slog.String("logger", name))
			delete(m, "logger")
		}
		addFields(&r, m)
		_ = l.Handler().Handle(context.Background(), r)
	}}
}
