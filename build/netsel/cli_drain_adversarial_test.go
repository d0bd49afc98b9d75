package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
)

// TestAdversarialCLIDrainTimeoutZero: a clumsy operator runs
// "netsel drain web a -timeout 0" (or a negative timeout) while a reader
// lags. The client then leaves the timeout to the registrar (30s), but the
// CLI bounds its own call by 15s + the timeout given, 0: it gives up after
// 15 s with exit 1 ("context deadline exceeded") while the registrar still
// waits — and when the client goes away the drain leaves the instance
// registered and draining, neither deregistered nor in rotation.
// Expected: the CLI refuses a timeout <= 0 (exit 2), or waits as long as
// the registrar does and reports the outcome (exit 3, not confirmed);
// never exit 1 with a drain half done.
func TestAdversarialCLIDrainTimeoutZero(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	cli := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		code := run(ctx, append(args, "-registrar", reg.URL), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := cli("register", "web", "-port", "8080", "-once", "-id", "a", "-address", "127.0.0.1"); code != 0 {
		t.Fatalf("register: %d %s", code, out)
	}
	v, err := catalog.EncodeReader(&catalog.Reader{ID: "proxy-9", Kind: catalog.ReaderProxy, Revision: 1, Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	if _, err := etcd.Client.Put(context.Background(), ks.ReaderKey("proxy-9"), string(v)); err != nil {
		t.Fatal(err)
	}
	code, out := cli("drain", "web", "a", "-timeout", "0")
	if code != 2 && code != 3 {
		t.Errorf("drain -timeout 0 with a lagging reader: exit %d, want 2 (refused) or 3 (not confirmed)\n%s", code, out)
	}
}
