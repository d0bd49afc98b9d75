package logs

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Zap returns a zap logger whose records go to l, for the libraries that log
// through zap (etcd's server and client, Caddy's modules).
func Zap(l *slog.Logger) *zap.Logger {
	return zap.New(ZapCore(l))
}

// ZapCore returns a zap core writing each entry to l as one record: zap's
// level mapped to slog's, the logger name as logger=, and the fields as
// attributes. Whether an entry is written is l's handler's decision.
func ZapCore(l *slog.Logger) zapcore.Core {
	return &zapCore{l: l}
}

type zapCore struct {
	l      *slog.Logger
	fields []zapcore.Field
}

// slogLevel maps a zap level to slog's.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return c.l.Enabled(context.Background(), slogLevel(l))
}

func (c *zapCore) With(fields []zapcore.Field) zapcore.Core {
	return &zapCore{l: c.l, fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	addFields(&r, enc.Fields)
	return c.l.Handler().Handle(context.Background(), r)
}

func (c *zapCore) Sync() error { return nil }

// addFields adds decoded fields to r as attributes, integral floats (JSON
// numbers) as integers.
func addFields(r *slog.Record, fields map[string]any) {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			v = int64(f)
		}
		r.AddAttrs(slog.Any(k, v))
	}
}
