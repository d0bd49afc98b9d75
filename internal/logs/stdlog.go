package logs

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"time"
)

// StdWriter returns a writer for Go's standard log package (log.SetOutput)
// that turns each line into a record of l. CoreDNS logs this way, as
// "[LEVEL] plugin/name: message": such a line becomes a record of part=dns
// with the line's level and a plugin= attribute; any other line one of
// part=go at info. Set the standard logger's flags to 0: the record has its
// own time.
func StdWriter(l *slog.Logger) *LineWriter {
	dns, other := Part(l, "dns"), Part(l, "go")
	return &LineWriter{handle: func(line []byte) {
		level, msg, l := slog.LevelInfo, string(line), other
		if rest, ok := strings.CutPrefix(msg, "["); ok {
			if tag, after, ok := strings.Cut(rest, "] "); ok {
				if lv, known := stdLevels[tag]; known {
					level, msg, l = lv, after, dns
				}
			}
		}
		r := slog.NewRecord(time.Now(), level, msg, 0)
		if p, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(p, "plugin/") && !strings.Contains(p, " ") {
			r = slog.NewRecord(r.Time, level, after, 0)
			r.AddAttrs(slog.String("plugin", strings.TrimPrefix(p, "plugin/")))
		}
		if l.Enabled(context.Background(), level) {
			_ = l.Handler().Handle(context.Background(), r)
		}
	}}
}

// stdLevels are CoreDNS's level tags.
var stdLevels = map[string]slog.Level{
	"DEBUG":   slog.LevelDebug,
	"INFO":    slog.LevelInfo,
	"WARNING": slog.LevelWarn,
	"ERROR":   slog.LevelError,
	"FATAL":   slog.LevelError,
}

// LineWriter hands each entry written to it to a function. It is safe for
// the concurrent use the standard log package makes of it (one Write per
// entry, serialised by the logger).
type LineWriter struct {
	handle func(line []byte)
}

// Write implements io.Writer. Each call is one entry, as the standard log
// package writes them: a message of several lines stays one record.
func (w *LineWriter) Write(p []byte) (int, error) {
	if entry := bytes.TrimRight(p, "\r\n"); len(bytes.TrimSpace(entry)) > 0 {
		w.handle(entry)
	}
	return len(p), nil
}
