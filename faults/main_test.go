//go:build linux

package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// The test binary runs as a registrar process when these are set: the
// etcd URL, the listen address and the VIP range.
const (
	envEtcd = "NETSEL_FAULTS_REGISTRAR_ETCD"
	envAddr = "NETSEL_FAULTS_REGISTRAR_ADDR"
	envVIPs = "NETSEL_FAULTS_REGISTRAR_VIPS"
)

// readyLine is what a registrar process prints once it listens.
const readyLine = "registrar listening"

func TestMain(m *testing.M) {
	if etcd := os.Getenv(envEtcd); etcd != "" {
		if err := runRegistrar(etcd, os.Getenv(envAddr), os.Getenv(envVIPs)); err != nil {
			fmt.Fprintln(os.Stderr, "registrar process:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runRegistrar serves a registrar over etcd on addr until SIGTERM: the body
// of a registrar process.
func runRegistrar(etcd, addr, vips string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cidr, err := netip.ParsePrefix(vips)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	reg, err := registrar.New(ctx, registrar.Config{
		Client:         cli,
		VIPCIDR:        cidr,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		RequestTimeout: 3 * time.Second,
		EtcdTimeout:    time.Second,
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(readyLine, ln.Addr())
	return reg.Serve(ctx, ln)
}

// registrarProc is a registrar running as a separate process (this test
// binary, re-executed), so a test can SIGKILL it.
type registrarProc struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	done <-chan struct{}
	log  *testenv.SyncBuffer
}

// startRegistrarProc runs a registrar process over etcd on addr (a free
// loopback port when empty) and waits until it listens. It is killed when
// the test ends.
func startRegistrarProc(t *testing.T, etcd, addr string, vips netip.Prefix) *registrarProc {
	t.Helper()
	if addr == "" {
		addr = testenv.FreeAddr(t)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &registrarProc{URL: "http://" + addr, Addr: addr, log: &testenv.SyncBuffer{}}
	// The port of a killed process may take a moment to be free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envEtcd+"="+etcd, envAddr+"="+addr, envVIPs+"="+vips.String())
		cmd.Stderr = p.log
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		done, err := startLocked(cmd)
		if err != nil {
			t.Fatalf("start registrar process: %v", err)
		}
		sc := bufio.NewScanner(out)
		if sc.Scan() && strings.HasPrefix(sc.Text(), readyLine) {
			go io.Copy(io.Discard, out)
			p.cmd, p.done = cmd, done
			break
		}
		<-done
		if time.Now().After(deadline) {
			t.Fatalf("registrar process on %s did not start: %v\n%s", addr, cmd.ProcessState, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("registrar process on %s log:\n%s", addr, p.log)
		}
	})
	return p
}

// startLocked starts cmd with Pdeathsig set, so it dies with the test
// binary even when cleanups do not run (a timeout panic), and returns a
// channel closed once it has exited. Pdeathsig fires when the thread that
// started the child ends, so that thread stays locked to the goroutine that
// waits for the child.
func startLocked(cmd *exec.Cmd) (<-chan struct{}, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
	}()
	return done, <-started
}

// kill SIGKILLs the registrar process and waits for it to exit.
func (p *registrarProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}
