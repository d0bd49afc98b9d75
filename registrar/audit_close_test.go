package registrar_test

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// TestAuditLogAfterClose: a write answered after Close (Serve's shutdown
// waits 10s at most for requests in flight, and Close does not wait for
// them) is not lost without a trace: its line is written, or logged as an
// error that holds it, as a dropped line is.
func TestAuditLogAfterClose(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	var logs testenv.SyncBuffer
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.AuditLog = file
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	reg.Registrar.Close()
	marker := "/v1/services/web/instances/answered-after-close"
	if r := do(t, "DELETE", reg.URL+marker, nil); r.status != http.StatusNotFound {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(file)
		return strings.Contains(string(b), marker) || strings.Contains(logs.String(), marker)
	}, "the audit line of a write answered after Close was neither written nor logged")
}
