package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// floodFDLimit is the open file limit the flooded runner gets.
const floodFDLimit = 1024

// floodExtraArgs are flags the flood test passes besides the addresses.
var floodExtraArgs = []string{"-register-rate", "-1"}

// runner is a "netsel serve" child process.
type runner struct {
	cmd  *exec.Cmd
	logs *testenv.SyncBuffer
	done chan struct{}
}

// startRunner runs bin serve with args under prlimit and waits for its
// registrar to answer /v1/health 200.
func startRunner(t *testing.T, bin, registrarAddr string, args []string) *runner {
	t.Helper()
	r := &runner{logs: &testenv.SyncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command("prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", floodFDLimit, floodFDLimit), bin, "serve"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	testenv.Eventually(t, 60*time.Second, func() bool {
		select {
		case <-r.done:
			t.Fatalf("runner exited: %v\n%s", r.cmd.ProcessState, r.logs)
		default:
		}
		return healthy(registrarAddr)
	}, "runner never healthy:\n%s", r.logs)
	return r
}

func (r *runner) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		t.Errorf("runner did not stop on SIGINT")
	}
}

// fds returns the open descriptors of the runner (prlimit execs it, so
// the pid is the runner's).
func (r *runner) fds(t *testing.T) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("runner's descriptors: %v\n%s", err, r.logs)
	}
	return len(ents)
}

func healthy(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// registerAt registers an instance of svc at backend and returns the
// service's VIP:port.
func registerAt(addr, svc string, backend backendAddr) (string, error) {
	body, _ := json.Marshal(map[string]any{"id": "a", "address": backend.host, "port": backend.port, "ttl": "1h"})
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+addr+"/v1/services/"+svc+"/instances", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("register %s: %d %s", svc, resp.StatusCode, b)
	}
	var a struct {
		VIP  string `json:"vip"`
		Port int    `json:"port"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return "", err
	}
	return net.JoinHostPort(a.VIP, strconv.Itoa(a.Port)), nil
}

type backendAddr struct {
	host string
	port int
}

// idleBackend accepts connections and holds them open, writing "hi".
func idleBackend(t *testing.T) backendAddr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hi")
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return backendAddr{"127.0.0.1", ln.Addr().(*net.TCPAddr).Port}
}

// TestRunnerSurvivesFloods runs the runner with 1024 descriptors, then
// floods it with services (one VIP listener each) and with idle
// connections to one VIP and to the HTTP proxy: etcd and the registrar
// keep answering and its descriptors stay under the limit. Restarted over
// the flooded catalog, it starts and serves.
func TestRunnerSurvivesFloods(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and floods the runner")
	}
	bin := goBuild(t, t.TempDir(), "./build/netsel")
	dataDir := filepath.Join(t.TempDir(), "etcd")
	reg, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := append([]string{
		"-data-dir", dataDir, "-etcd-listen", testenv.FreeAddr(t), "-etcd-peer", testenv.FreeAddr(t),
		"-registrar", reg, "-dns", testenv.FreeAddr(t), "-http", httpAddr,
		"-vip-cidr", "127.81.0.0/16", "-log-level", "warn",
	}, floodExtraArgs...)
	r := startRunner(t, bin, reg, args)
	backend := idleBackend(t)

	const services = 300
	var vip string
	for i := range services {
		ap, err := registerAt(reg, fmt.Sprintf("flood%d", i), backend)
		if err != nil {
			t.Fatalf("service %d: %v\n%s", i, err, r.logs)
		}
		if i == 0 {
			vip = ap
		}
	}
	// One VIP and the HTTP proxy, flooded with idle connections.
	testenv.Eventually(t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", vip, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "VIP %s never listened", vip)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, addr := range []string{vip, httpAddr} {
		for range 600 {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			held = append(held, c)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil && !healthy(reg) {
		time.Sleep(100 * time.Millisecond)
	}
	if !healthy(reg) {
		t.Fatalf("registrar unhealthy under the flood\n%s", r.logs)
	}
	if _, err := registerAt(reg, "after-flood", backend); err != nil {
		t.Fatalf("registration under the flood: %v\n%s", err, r.logs)
	}
	n := r.fds(t)
	t.Logf("under the flood (%d services, %d connections held): the runner holds %d descriptors of %d", services, len(held), n, floodFDLimit)
	if n >= floodFDLimit-64 {
		t.Errorf("runner holds %d descriptors of %d", n, floodFDLimit)
	}
	if strings.Contains(r.logs.String(), "too many open files") {
		t.Errorf("runner ran out of descriptors:\n%s", r.logs)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil

	// Restart over the flooded catalog: it must start and serve.
	r.stop(t)
	r = startRunner(t, bin, reg, args)
	if _, err := registerAt(reg, "after-restart", backend); err != nil {
		t.Fatalf("registration after restart: %v\n%s", err, r.logs)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return strings.Contains(r.logs.String(), "max_listeners") },
		"the restarted runner never logged that it skipped listeners:\n%s", r.logs)
	n = r.fds(t)
	t.Logf("restarted over %d services: the runner holds %d descriptors", services+2, n)
	if n >= floodFDLimit-64 {
		t.Errorf("restarted runner holds %d descriptors of %d", n, floodFDLimit)
	}
}
