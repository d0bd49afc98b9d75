package hostile

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/childproc"
	"github.com/netsel/netsel/internal/testenv"
)

const (
	tokenA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokenB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tokenC = "cccccccccccccccccccccccccccccccc"
)

// writeTokens writes a token file of lines and returns its path.
func writeTokens(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWeakTokenFileRefused starts the runner with a guessable token and
// with a shell-negation pattern that would silently mean something else:
// it refuses to start and names the line.
func TestWeakTokenFileRefused(t *testing.T) {
	for name, line := range map[string]string{
		"short token":   "abc actions=register services=web",
		"negation glob": tokenA + " actions=register services=[!w]*",
	} {
		t.Run(name, func(t *testing.T) {
			tokens := writeTokens(t, "# ops", line)
			logs := &testenv.SyncBuffer{}
			args := []string{"serve", "-data-dir", t.TempDir(), "-token-file", tokens,
				"-registrar", testenv.FreeAddr(t), "-dns", testenv.FreeAddr(t), "-http", testenv.FreeAddr(t),
				"-etcd-listen", testenv.FreeAddr(t), "-etcd-peer", testenv.FreeAddr(t)}
			proc, err := childproc.Start(runnerBin, args, logs)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-proc.Exited():
			case <-time.After(60 * time.Second):
				proc.Stop(os.Interrupt, 20*time.Second)
				t.Fatalf("runner started with %q; logs:\n%s", line, tail(logs.String(), 4000))
			}
			if proc.State().Success() || !strings.Contains(logs.String(), "line 2") {
				t.Errorf("runner exit %v, want a failure naming line 2; logs:\n%s", proc.State(), tail(logs.String(), 4000))
			}
		})
	}
}

// TestRegistrationFloodPerToken floods registrations with one token: the
// flood is answered 429 with Retry-After while another token's
// registrations go through.
func TestRegistrationFloodPerToken(t *testing.T) {
	tokens := writeTokens(t,
		tokenA+" actions=register services=flood-*",
		tokenB+" actions=register services=calm",
		tokenC+" actions=register services=canary")
	r := startRunner(t, withFlags("-token-file", tokens), withCanaryToken(tokenC))
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	ctx := withTimeout(t, 5*time.Second)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				status, _ := r.register(fmt.Sprintf("flood-%d", w), map[string]any{"address": "127.0.0.1", "port": 9, "id": fmt.Sprintf("i%d", i%50)},
					"Authorization", "Bearer "+tokenA)
				switch status {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				}
			}
		})
	}
	// Meanwhile the other token registers normally.
	calm := 0
	for ctx.Err() == nil {
		status, body := r.register("calm", map[string]any{"address": "127.0.0.1", "port": 9, "id": "c1"}, "Authorization", "Bearer "+tokenB)
		if status != http.StatusOK {
			t.Errorf("the other token's registration: %d %s", status, body)
			break
		}
		calm++
		time.Sleep(100 * time.Millisecond) // a calm client's pace, not a wait on a condition
	}
	wg.Wait()
	t.Logf("flood: %d ok, %d limited; calm: %d ok", ok.Load(), limited.Load(), calm)
	if limited.Load() == 0 {
		t.Errorf("a flood of %d registrations with one token was never limited", ok.Load())
	}
	r.requireServing(t)
}
