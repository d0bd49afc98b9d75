//go:build unix

package registrar_test

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// TestAuditLogStuck: an audit log that takes no more writes (a pipe no one
// reads) slows writes by at most about a second once, then drops lines with
// an error in the log, and never wedges a request; lines flow again once
// it is read.
func TestAuditLogStuck(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "audit.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// A raw descriptor: its reads answer EAGAIN when the pipe is empty,
	// where an *os.File's would wait.
	rd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(rd)
	var logs testenv.SyncBuffer
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.AuditLog = fifo
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	id := strings.Repeat("i", 60)
	var slowest time.Duration
	// Lines of ~300 bytes: the pipe's 64 KiB and the queue of 256 lines
	// fill within 600 requests.
	for i := range 600 {
		start := time.Now()
		r := do(t, "DELETE", reg.URL+"/v1/services/web/instances/"+id+strings.Repeat("x", i%3), nil)
		if r.status != http.StatusNotFound {
			t.Fatalf("deregister: %d %s", r.status, r.body)
		}
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 3*time.Second {
		t.Errorf("the slowest request took %v with the audit log stuck, want about a second at most", slowest)
	}
	if !strings.Contains(logs.String(), "audit log is not keeping up") {
		t.Fatalf("no error logged for the dropped lines; logs:\n%s", logs.String())
	}
	// Read the pipe: lines are written again.
	marker := "/v1/services/web/instances/after-the-stall"
	var seen strings.Builder
	buf := make([]byte, 64<<10)
	testenv.Eventually(t, 10*time.Second, func() bool {
		do(t, "DELETE", reg.URL+marker, nil)
		for {
			n, _ := syscall.Read(rd, buf)
			if n <= 0 {
				break
			}
			seen.Write(buf[:n])
		}
		return strings.Contains(seen.String(), marker)
	}, "the audit log took no line after it was read again")
}
