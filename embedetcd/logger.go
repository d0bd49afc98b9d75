package embedetcd

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/netsel/netsel/internal/logs"
)

// shutdownNoise is what etcd logs, at error level, for every listener it
// closes on a normal shutdown.
const shutdownNoise = "setting up serving from embedded etcd failed."

// newLogger returns etcd's logger at level, to to when it is set and else
// JSON on stderr as etcd logs by default, leaving out the errors etcd reports for its own listeners once
// closing is set: a graceful stop should not read like a failure.
func newLogger(level string, to *slog.Logger, closing *atomic.Bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: log level %q: %w", level, err)
	}
	quiet := zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return quietCore{Core: c, closing: closing}
	})
	if to != nil {
		return zap.New(minLevelCore{Core: logs.ZapCore(to), min: lvl}).WithOptions(quiet), nil
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	lg, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: logger: %w", err)
	}
	return lg.WithOptions(quiet), nil
}

// quietCore drops shutdownNoise while closing is set.
type quietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c quietCore) With(fields []zapcore.Field) zapcore.Core {
	return quietCore{Core: c.Core.With(fields), closing: c.closing}
}

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() && e.Message == shutdownNoise {
		return ce
	}
	return c.Core.Check(e, ce)
}

// minLevelCore drops entries below min.
type minLevelCore struct {
	zapcore.Core
	min zapcore.Level
}

func (c minLevelCore) Enabled(l zapcore.Level) bool { return l >= c.min && c.Core.Enabled(l) }

func (c minLevelCore) With(fields []zapcore.Field) zapcore.Core {
	return minLevelCore{Core: c.Core.With(fields), min: c.min}
}

func (c minLevelCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Level < c.min {
		return ce
	}
	return c.Core.Check(e, ce)
}
