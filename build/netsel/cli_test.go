package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// TestCLIFlagsAnywhere runs every client command with its flags before,
// between and after its positional arguments, as the README writes them
// ("netsel register web -port 8080 -once"): each must parse the same. The
// subtests run in order on one registrar: each needs what the one before
// registered.
func TestCLIFlagsAnywhere(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	r := reg.URL
	tests := []struct {
		name   string
		args   []string
		stdout string
		// long marks a command that runs until interrupted: it is
		// stopped once stdout shows what is wanted.
		long bool
	}{
		{"register, flags after the name", []string{"register", "web", "-port", "8080", "-once", "-id", "a1", "-registrar", r}, "registered web/a1:", false},
		{"register, flags before the name", []string{"register", "-registrar", r, "-port", "8081", "-once", "-id", "a2", "web"}, "registered web/a2:", false},
		{"register, flags on both sides", []string{"register", "-registrar", r, "web", "-port=8082", "-once", "-id", "a3"}, "registered web/a3:", false},
		{"register and keep alive, flags after", []string{"register", "web", "-port", "8083", "-id", "k1", "-interval", "1s", "-registrar", r}, "registered web/k1:", true},
		{"services, flags in any order", []string{"services", "-json", "-registrar", r}, `"name": "web"`, false},
		{"instances, flags after the name", []string{"instances", "web", "-registrar", r, "-json"}, `"id": "a3"`, false},
		{"instances, flags before the name", []string{"instances", "-registrar", r, "web"}, "a2", false},
		{"watch, flags after the name", []string{"watch", "web", "-registrar", r, "-wait", "1s"}, "web  vip", true},
		{"watch, flags before the name", []string{"watch", "-wait", "1s", "-registrar", r, "web"}, "web  vip", true},
		{"deregister, flags after the names", []string{"deregister", "web", "a1", "-registrar", r}, "deregistered web/a1", false},
		{"deregister, flags between the names", []string{"deregister", "web", "-registrar", r, "a2"}, "deregistered web/a2", false},
		{"deregister, flags before the names", []string{"deregister", "-registrar", r, "web", "a3"}, "deregistered web/a3", false},
		{"register once more, -- ends the flags", []string{"register", "-registrar", r, "-port", "8084", "-once", "-id", "gone", "--", "gone"}, "registered gone/gone:", false},
		{"deregister, -- ends the flags", []string{"deregister", "-registrar", r, "--", "gone", "gone"}, "deregistered gone/gone", false},
		{"delete-service, flags after the name", []string{"delete-service", "gone", "-registrar", r}, "deleted service gone", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr testenv.SyncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan int, 1)
			go func() { done <- run(ctx, tt.args, &stdout, &stderr) }()
			if tt.long {
				testenv.Eventually(t, 10*time.Second, func() bool {
					select {
					case code := <-done:
						t.Fatalf("netsel %q exited %d early\nstdout: %s\nstderr: %s", tt.args, code, &stdout, &stderr)
					default:
					}
					return strings.Contains(stdout.String(), tt.stdout)
				}, "netsel %q: stdout %q does not show %q; stderr: %s", tt.args, &stdout, tt.stdout, &stderr)
				cancel()
			}
			if code := <-done; code != 0 {
				t.Fatalf("netsel %q: exit %d, want 0\nstdout: %s\nstderr: %s", tt.args, code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("netsel %q: stdout %q does not contain %q", tt.args, &stdout, tt.stdout)
			}
		})
	}
}

// TestCLIArgumentCount: too few or too many positional arguments, wherever
// the flags are, is a usage error (exit 2) before anything is sent.
func TestCLIArgumentCount(t *testing.T) {
	r := "http://" + testenv.FreeAddr(t) // nothing listens: a request would fail with exit 1
	for _, args := range [][]string{
		{"instances", "-registrar", r},
		{"instances", "web", "extra", "-registrar", r},
		{"instances", "web", "-registrar", r, "extra"},
		{"deregister", "web", "-registrar", r},
		{"delete-service", "-registrar", r, "--"},
		{"services", "web", "-registrar", r},
		{"watch", "a", "b", "-registrar", r},
		{"register", "-port", "80", "-once", "-registrar", r},
		{"register", "web", "-port", "80", "-registrar", r, "-once", "web2"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("netsel %q: exit %d, want 2\nstderr: %s", args, code, stderr.String())
		}
	}
}

// TestCLIRegisterOnceLostAnswer: "register -once" without -id, where the
// first registrar commits the registration and its answer is lost, fails
// over to the second registrar and leaves exactly one instance.
func TestCLIRegisterOnceLostAnswer(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	r1 := testenv.StartRegistrar(t, etcd.URL)
	r2 := testenv.StartRegistrar(t, etcd.URL)
	loser := testenv.StartAnswerLoser(t, r1.Addr)
	var stdout, stderr bytes.Buffer
	args := []string{"register", "web", "-port", "8080", "-once", "-registrar", "http://" + loser.Addr() + "," + r2.URL}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("netsel %q: exit %d\nstdout: %s\nstderr: %s", args, code, &stdout, &stderr)
	}
	if loser.Lost() != 1 {
		t.Fatalf("%d answers lost, want the first registrar's one", loser.Lost())
	}
	resp, err := etcd.Client.Get(context.Background(), "/netsel/instances/web/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || !strings.Contains(stdout.String(), string(resp.Kvs[0].Key[len("/netsel/instances/web/"):])) {
		t.Errorf("instances of web in etcd: %v, want exactly the one the CLI printed: %s", resp.Kvs, &stdout)
	}
}

// TestCLIRegisterFillsAddress: "netsel register" without -address, against
// a multi-host registrar on this host, registers the registrar's host
// address, which "netsel instances" shows as the instance's address and
// host; "-address 127.0.0.1" is refused as reachable only on this host.
func TestCLIRegisterFillsAddress(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) { c.HostAddr = netip.MustParseAddr("198.18.0.11") })
	cli := func(args ...string) (code int, stdout, stderr string) {
		var out, errb bytes.Buffer
		code = run(context.Background(), append(args, "-registrar", reg.URL), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, stdout, stderr := cli("register", "web", "-port", "8080", "-once", "-id", "a1")
	if code != 0 || !strings.Contains(stdout, "registered web/a1:") || !strings.Contains(stdout, "instance 198.18.0.11") {
		t.Fatalf("register without -address: exit %d, stdout %q, stderr %q; want the registrar's host address 198.18.0.11", code, stdout, stderr)
	}
	code, stdout, stderr = cli("instances", "web")
	if code != 0 || !strings.Contains(stdout, "198.18.0.11:8080  198.18.0.11  passing") {
		t.Fatalf("instances: exit %d, stdout %q, stderr %q; want a1 at 198.18.0.11:8080 from host 198.18.0.11", code, stdout, stderr)
	}
	code, _, stderr = cli("register", "web", "-port", "8080", "-once", "-id", "a2", "-address", "127.0.0.1")
	if code != 1 || !strings.Contains(stderr, "loopback") || !strings.Contains(stderr, "address") {
		t.Fatalf("register -address 127.0.0.1: exit %d, stderr %q; want 1 and an error naming address as loopback", code, stderr)
	}
}
