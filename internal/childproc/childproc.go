// Package childproc runs a child process that dies with this one, for the
// tests and benchmarks that start etcd or the NetSel runner as real
// processes and stop, freeze or kill them.
package childproc

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a started child process. Its methods are safe to call after
// it has exited.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs bin with args, its output to out. The child is SIGKILLed if
// this process dies without stopping it: Pdeathsig fires when the thread
// that started the child ends, so that thread stays locked to the
// goroutine waiting for the child.
func Start(bin string, args []string, out io.Writer) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	return p, nil
}

// Exited returns a channel closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited (a stopped process
// counts as running).
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// PID returns the process id, or 0 once the process has exited.
func (p *Process) PID() int {
	if !p.Running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// State describes how the process exited; nil while it runs.
func (p *Process) State() *os.ProcessState {
	if p.Running() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig to the process, unless it has exited.
func (p *Process) Signal(sig os.Signal) error {
	if !p.Running() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits for the process to exit, killing it once grace has passed; a
// grace of 0 waits as long as it takes. It reports whether it had to kill.
func (p *Process) Wait(grace time.Duration) (killed bool) {
	if grace > 0 {
		select {
		case <-p.exited:
			return false
		case <-time.After(grace):
			p.cmd.Process.Kill()
			killed = true
		}
	}
	<-p.exited
	return killed
}

// Stop sends sig and waits for the process to exit, killing it after grace.
func (p *Process) Stop(sig os.Signal, grace time.Duration) (killed bool) {
	if !p.Running() {
		return false
	}
	p.cmd.Process.Signal(sig)
	return p.Wait(grace)
}
