package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/netsel/netsel/internal/childproc"
)

// child is a process the soak starts, restarts and signals, its output
// appended to logPath. It dies with the soak.
type child struct {
	logPath string
	proc    *childproc.Process // nil until first started
}

// launch starts bin with args, first writing header (if any) to the log.
func (c *child) launch(bin string, args []string, header string) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if header != "" {
		fmt.Fprintln(logf, header)
	}
	proc, err := childproc.Start(bin, args, logf)
	if err != nil {
		logf.Close()
		return err
	}
	go func() {
		<-proc.Exited()
		logf.Close()
	}()
	c.proc = proc
	return nil
}

// running reports whether the process is alive.
func (c *child) running() bool { return c.proc != nil && c.proc.Running() }

// pid returns the process id, or 0 when it is not running.
func (c *child) pid() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.PID()
}

// exitState describes how the process exited.
func (c *child) exitState() *os.ProcessState {
	if c.proc == nil {
		return nil
	}
	return c.proc.State()
}

// signal sends sig and waits for the process to exit, killing it after grace.
func (c *child) signal(sig syscall.Signal, grace time.Duration) {
	if c.proc != nil {
		c.proc.Stop(sig, grace)
	}
}
