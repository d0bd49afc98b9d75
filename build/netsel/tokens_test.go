package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestServeRefusesWeakTokenFile: a token file with a token shorter than 16
// characters, or a "[!" pattern (which path.Match does not read as a
// negation), stops the runner from starting, naming the line.
func TestServeRefusesWeakTokenFile(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"ops-token-0123456789 actions=admin\nabc actions=register\n", "line 2: the token has 3 characters, fewer than 16"},
		{"# deployers\nweb-token-0123456789 actions=register services=[!w]*\n", `line 2: service pattern "[!w]*"`},
	} {
		file := filepath.Join(t.TempDir(), "tokens")
		writeTokens(t, file, tc.file)
		f := stackFlags(t, "127.79.0.0/16")
		args := []string{"serve", "-data-dir", f.dataDir, "-etcd-listen", f.etcdListen, "-etcd-peer", f.etcdPeer,
			"-registrar", f.registrar, "-dns", "", "-http", "", "-vip-proxy=false", "-token-file", file}
		var stderr testenv.SyncBuffer
		// Before the check, the runner started and ran until ctx ended.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := run(ctx, args, io.Discard, &stderr)
		cancel()
		if code != 1 || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), "netsel ready") {
			t.Errorf("netsel serve with token file %q: exit %d, want 1 naming %q; stderr:\n%s", tc.file, code, tc.want, &stderr)
		}
	}
}

// TestSIGHUPKeepsTokensOnWeakFile: a SIGHUP that finds a short token or a
// "[!" pattern in the token file keeps the tokens loaded before.
func TestSIGHUPKeepsTokensOnWeakFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, file, "web-token-0123456789 actions=register services=web\n")
	f := stackFlags(t, "127.79.0.0/16")
	f.dns, f.http, f.vipProxy, f.tokenFile = "", "", false, file
	logs := runTestStack(t, f)
	c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}, Token: "web-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, weak := range []string{
		"web-token-0123456789 actions=register services=web\nshort-token actions=admin\n",
		"web-token-0123456789 actions=register services=web,[!w]*\n",
	} {
		writeTokens(t, file, weak)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() bool {
			return strings.Count(logs.String(), "reload failed") == i+1
		}, "no failed reload logged for %q; logs:\n%s", weak, logs)
		if _, err := c.Register(ctx, client.Registration{Service: "web", ID: "w1", Address: "127.0.0.1", Port: 8080}); err != nil {
			t.Errorf("after reloading %q: the token loaded before does not work: %v", weak, err)
		}
	}
	if !strings.Contains(logs.String(), "line 2: the token has 11 characters") {
		t.Errorf("the failed reload does not name the line; logs:\n%s", logs)
	}
}
