package childproc

import (
	"bufio"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestStopAndKill(t *testing.T) {
	tests := []struct {
		name       string
		sig        syscall.Signal
		grace      time.Duration
		args       []string
		wantKilled bool
	}{
		{"exits on SIGTERM", syscall.SIGTERM, 5 * time.Second, []string{"60"}, false},
		{"killed after grace", syscall.SIGTERM, 100 * time.Millisecond, []string{"-c", "trap '' TERM; echo ready; sleep 60"}, true},
		{"SIGKILL", syscall.SIGKILL, 0, []string{"60"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := "/bin/sleep"
			if tt.args[0] == "-c" {
				bin = "/bin/sh"
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := Start(bin, tt.args, w)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if bin == "/bin/sh" {
				// Signal only once the shell has set its trap.
				if line, _ := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
					t.Fatalf("shell said %q, want ready", line)
				}
			}
			if !p.Running() || p.PID() == 0 {
				t.Fatal("started process not running")
			}
			if killed := p.Stop(tt.sig, tt.grace); killed != tt.wantKilled {
				t.Errorf("Stop killed = %v, want %v", killed, tt.wantKilled)
			}
			if p.Running() || p.PID() != 0 || p.State() == nil {
				t.Errorf("after Stop: running %v, pid %d, state %v", p.Running(), p.PID(), p.State())
			}
			if p.Stop(tt.sig, tt.grace) || p.Signal(syscall.SIGTERM) != nil {
				t.Error("Stop or Signal after exit did something")
			}
		})
	}
}

func TestStartMissingBinary(t *testing.T) {
	if _, err := Start("/nonexistent/binary", nil, io.Discard); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}
