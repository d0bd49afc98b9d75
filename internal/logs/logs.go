// Package logs is NetSel's one log stream: every part of a process (embedded
// etcd, etcd clients, the registrar, CoreDNS and Caddy) logs through one
// *slog.Logger, in one format, each record carrying a part= attribute.
//
// The parts that do not log through slog are bridged into it: zap (etcd,
// its clients and Caddy) by ZapCore, Go's standard log package (CoreDNS)
// by StdWriter.
package logs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Formats are the log formats New accepts.
var Formats = []string{"text", "json"}

// New returns a logger writing records of level and above to w as format
// "text" (logfmt, the default when format is empty) or "json". Neither
// format writes terminal colour codes.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// Part returns l with the part attribute set to name.
func Part(l *slog.Logger, name string) *slog.Logger {
	return l.With("part", name)
}
