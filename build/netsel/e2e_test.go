package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// stackFlags returns the flags of a stack on free loopback ports, with its
// VIPs in cidr (apart from a developer's running NetSel).
func stackFlags(t *testing.T, cidr string) serveFlags {
	t.Helper()
	return serveFlags{
		dataDir:     filepath.Join(t.TempDir(), "etcd"),
		etcdListen:  testenv.FreeAddr(t),
		etcdPeer:    testenv.FreeAddr(t),
		prefix:      "/netsel/",
		registrar:   testenv.FreeAddr(t),
		vipCIDR:     cidr,
		dns:         testenv.FreeAddr(t),
		zone:        "netsel.",
		http:        testenv.FreeAddr(t),
		vipProxy:    true,
		checks:      true,
		stopTimeout: 20 * time.Second,
	}
}

// runTestStack runs the stack of f in-process until the test ends, when it
// is stopped gracefully, and returns once it is ready. It returns the
// stack's logs.
func runTestStack(t *testing.T, f serveFlags) *testenv.SyncBuffer {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runStack(ctx, f, logger) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runStack: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("stack did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	})
	testenv.Eventually(t, 60*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("stack stopped: %v\n%s", err, logs.String())
		default:
		}
		return strings.Contains(logs.String(), "netsel ready")
	}, "stack not ready; logs:\n%s", logs)
	return logs
}

// startStack runs a plain stack (no TLS, no tokens) and returns its flags.
func startStack(t *testing.T) serveFlags {
	t.Helper()
	f := stackFlags(t, "127.78.0.0/16")
	runTestStack(t, f)
	return f
}

// goBuild builds a package of this module into dir and returns the binary.
func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestStackRunsTheExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the examples")
	}
	f := startStack(t)
	bin := t.TempDir()
	service := goBuild(t, bin, "./examples/service")
	client := goBuild(t, bin, "./examples/client")
	registrar := "http://" + f.registrar

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var svcLogs testenv.SyncBuffer
	svc := exec.CommandContext(ctx, service, "-registrar", registrar, "-interval", "1s", "-ttl", "5s", "-check-interval", "1s")
	svc.Stdout, svc.Stderr = &svcLogs, &svcLogs
	svc.Cancel = func() error { return svc.Process.Signal(os.Interrupt) }
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(svcLogs.String(), "msg=registered")
	}, "service did not register; logs:\n%s", &svcLogs)

	out, err := exec.CommandContext(ctx, client, "-registrar", registrar, "-dns", f.dns, "-http", f.http).CombinedOutput()
	t.Logf("client:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("all checks passed")) {
		t.Fatalf("client example failed: %v", err)
	}

	// The CLI lists what the service registered.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"instances", "-registrar", registrar, "echo"}, &stdout, &stderr); code != 0 {
		t.Fatalf("netsel instances: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "echo  vip 127.78.") {
		t.Errorf("netsel instances output:\n%s", stdout.String())
	}

	// SIGUSR1 makes its health check fail: the registrar's checker marks it
	// critical (three failed probes, a second apart), and it passes again
	// after the next SIGUSR1.
	state := func() string {
		var out bytes.Buffer
		run(context.Background(), []string{"instances", "-registrar", registrar, "echo"}, &out, io.Discard)
		return out.String()
	}
	for _, want := range []string{"critical", "passing"} {
		svc.Process.Signal(syscall.SIGUSR1)
		testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(state(), want) },
			"the instance is not %s after SIGUSR1; netsel instances:\n%s\nservice logs:\n%s", want, lazyString(state), &svcLogs)
	}

	// Ctrl-C on the service deregisters it at once.
	svc.Process.Signal(os.Interrupt)
	if err := svc.Wait(); err != nil {
		t.Errorf("service exit: %v\n%s", err, svcLogs.String())
	}
	if !strings.Contains(svcLogs.String(), "deregistered") {
		t.Errorf("service did not deregister on interrupt:\n%s", svcLogs.String())
	}
	stdout.Reset()
	run(context.Background(), []string{"services", "-registrar", registrar}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "echo") || !strings.Contains(stdout.String(), " 0\n") {
		t.Errorf("after deregistration, netsel services:\n%s", stdout.String())
	}
}

func TestCLI(t *testing.T) {
	f := startStack(t)
	registrar := "http://" + f.registrar
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrOK func(string) bool
	}{
		{"help", []string{"help"}, 0, "netsel services", nil},
		{"unknown command", []string{"frobnicate"}, 2, "", func(s string) bool { return strings.Contains(s, `unknown command "frobnicate"`) }},
		{"register once", []string{"register", "-registrar", registrar, "-once", "-port", "8080", "-id", "a1", "web"}, 0, "registered web/a1: vip 127.78.", nil},
		{"register bad port", []string{"register", "-registrar", registrar, "-once", "-port", "0", "web"}, 1, "", func(s string) bool { return strings.Contains(s, "port") }},
		{"register with a check", []string{"register", "-registrar", registrar, "-once", "-port", "8080", "-id", "c1", "-check", "tcp", "-check", "http:/healthz", "-check-interval", "5s", "web"}, 0, "registered web/c1", nil},
		{"register, a check on no port", []string{"register", "-registrar", registrar, "-once", "-port", "8080", "-check", "tcp@admin", "web"}, 1, "", func(s string) bool { return strings.Contains(s, "checks[0].port") }},
		{"register, a bad check", []string{"register", "-registrar", registrar, "-once", "-port", "8080", "-check", "icmp", "web"}, 1, "", func(s string) bool { return strings.Contains(s, "want http") }},
		{"register, a check too often", []string{"register", "-registrar", registrar, "-once", "-port", "8080", "-check", "tcp", "-check-interval", "100ms", "web"}, 1, "", func(s string) bool { return strings.Contains(s, "checks[0].interval") }},
		{"register bad name", []string{"register", "-registrar", registrar, "-once", "-port", "80", "Web_1"}, 1, "", func(s string) bool { return strings.Contains(s, "name") }},
		{"services", []string{"services", "-registrar", registrar}, 0, "web", nil},
		{"instances", []string{"instances", "-registrar", registrar, "web"}, 0, "a1", nil},
		{"instances unknown", []string{"instances", "-registrar", registrar, "nope"}, 1, "", nil},
		{"instances missing arg", []string{"instances", "-registrar", registrar}, 2, "", nil},
		{"deregister", []string{"deregister", "-registrar", registrar, "web", "a1"}, 0, "deregistered web/a1", nil},
		{"deregister c1", []string{"deregister", "-registrar", registrar, "web", "c1"}, 0, "deregistered web/c1", nil},
		{"delete service", []string{"delete-service", "-registrar", registrar, "web"}, 0, "deleted service web", nil},
		{"registrar down", []string{"services", "-registrar", "http://" + testenv.FreeAddr(t)}, 1, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.stdout)
			}
			if tt.stderrOK != nil && !tt.stderrOK(stderr.String()) {
				t.Errorf("unexpected stderr: %s", stderr.String())
			}
		})
	}
}

func TestWatchPrintsChanges(t *testing.T) {
	f := startStack(t)
	registrar := "http://" + f.registrar
	// Watch runs until interrupted; run it on a pipe and stop reading once
	// the change shows.
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan int)
	go func() {
		watchDone <- run(ctx, []string{"watch", "-registrar", registrar, "-wait", "10s"}, pw, io.Discard)
	}()
	lines := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			if err != nil {
				return
			}
			lines <- string(buf[:n])
		}
	}()
	var seen strings.Builder
	deadline := time.After(10 * time.Second)
	registered := false
	for !strings.Contains(seen.String(), "watched  vip") {
		select {
		case l := <-lines:
			seen.WriteString(l)
			if !registered && strings.Contains(seen.String(), "---") {
				registered = true
				var out, errb bytes.Buffer
				if code := run(context.Background(), []string{"register", "-registrar", registrar, "-once", "-port", "81", "watched"}, &out, &errb); code != 0 {
					t.Fatalf("register: %s", errb.String())
				}
			}
		case <-deadline:
			t.Fatalf("watch did not print the new service; output:\n%s", seen.String())
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case code := <-watchDone:
		if code != 0 {
			t.Errorf("watch exit %d after cancel, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Error("watch did not stop when its context ended")
	}
}

// lazyString formats as f() when printed.
type lazyString func() string

func (l lazyString) String() string { return l() }
