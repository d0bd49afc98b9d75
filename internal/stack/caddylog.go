package stack

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap/zapcore"

	"github.com/netsel/netsel/internal/logs"
)

func init() {
	caddy.RegisterModule(new(caddyLogCore))
}

// caddyLoggers are the loggers Caddy configs of this process log to, by the
// stream key in their config: a Caddy config is JSON and cannot carry a
// *slog.Logger itself.
var caddyLoggers sync.Map // string -> *slog.Logger

// registerCaddyLogger makes l the target of the caddy.logging.cores.netsel
// module of a config naming the returned stream; release forgets it.
func registerCaddyLogger(l *slog.Logger) (stream string, release func()) {
	stream = rand.Text()
	caddyLoggers.Store(stream, l)
	return stream, func() { caddyLoggers.Delete(stream) }
}

// caddyLogCore is the log core module caddy.logging.cores.netsel: it
// writes Caddy's log entries to the stack's logger.
type caddyLogCore struct {
	// Stream names the logger, set by the stack.
	Stream string `json:"stream"`

	zapcore.Core `json:"-"`
}

// CaddyModule returns the Caddy module information.
func (*caddyLogCore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.cores.netsel",
		New: func() caddy.Module { return new(caddyLogCore) },
	}
}

// Provision finds the stream's logger.
func (c *caddyLogCore) Provision(caddy.Context) error {
	if c.Stream == "" {
		return errors.New("stream is required")
	}
	l, ok := caddyLoggers.Load(c.Stream)
	if !ok {
		return fmt.Errorf("no logger for stream %q (it belongs to a stack that stopped)", c.Stream)
	}
	c.Core = logs.ZapCore(l.(*slog.Logger))
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner = (*caddyLogCore)(nil)
	_ zapcore.Core      = (*caddyLogCore)(nil)
)
