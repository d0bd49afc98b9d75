//go:build linux

package testenv

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// serveWho accepts connections on ln and answers each with the address it
// came from.
func serveWho(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String())
			c.Close()
		}
	}()
}

// who dials addr from h and returns what serveWho answers.
func who(ctx context.Context, h *Host, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// mustReach fails t unless h reaches the serveWho at addr.
func mustReach(t *testing.T, h *Host, addr string) {
	t.Helper()
	got, err := who(context.Background(), h, addr)
	if err != nil || got != h.Addr().String() {
		t.Fatalf("host %s to %s: answer %q, %v; want %q", h.Addr(), addr, got, err, h.Addr())
	}
}

// mustNotReach fails t if h connects to addr within a second.
func mustNotReach(t *testing.T, h *Host, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	c, err := h.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("host %s reached %s; want it cut off", h.Addr(), addr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("host %s to %s failed only after %v", h.Addr(), addr, d)
	}
}

// TestHostsNetwork checks the bed: hosts reach each other at their
// addresses from inside their namespaces, and nothing else.
func TestHostsNetwork(t *testing.T) {
	nt := StartHosts(t, 3)
	h0, h1, h2 := nt.Hosts[0], nt.Hosts[1], nt.Hosts[2]
	if got := h0.Addr().String(); got != "198.18.0.10" {
		t.Fatalf("host 0 at %s, want 198.18.0.10", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, h := range nt.Hosts {
		out, err := h.Command(ctx, "ip", "-4", "route", "show", "table", "main").CombinedOutput()
		if err != nil {
			t.Fatalf("routes of host %s: %v: %s", h.Addr(), err, out)
		}
		if want := "198.18.0.0/24 dev eth0 "; !strings.HasPrefix(string(out), want) || strings.Count(string(out), "\n") != 1 {
			t.Errorf("routes of host %s:\n%s\nwant only %q", h.Addr(), out, want)
		}
		out, err = exec.CommandContext(ctx, "ip", "-n", h.Name(), "route", "show", "table", "all").CombinedOutput()
		if err != nil || strings.Contains(string(out), "default") {
			t.Errorf("all routes of host %s (%v):\n%s\nwant no default route", h.Addr(), err, out)
		}
		out, err = exec.CommandContext(ctx, "ip", "-n", h.Name(), "-6", "addr", "show").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("IPv6 addresses of host %s (%v):\n%s\nwant none", h.Addr(), err, out)
		}
		if _, err := h.DialContext(ctx, "tcp", "192.0.2.1:80"); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("host %s dialed 192.0.2.1: %v; want network unreachable", h.Addr(), err)
		}
	}

	ln, err := h0.Listen("tcp", "198.18.0.10:0")
	if err != nil {
		t.Fatal(err)
	}
	serveWho(ln)
	mustReach(t, h2, ln.Addr().String())
	mustReach(t, h1, ln.Addr().String())

	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	hln, err := h1.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(hln)
	t.Cleanup(func() { srv.Close() })
	resp, err := h2.HTTPClient().Get("http://198.18.0.11:8080/")
	if err != nil {
		t.Fatalf("HTTP from host 2 to host 1: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "198.18.0.12:") {
		t.Errorf("HTTP from host 2 seen from %q", body)
	}

	pc, err := h2.ListenPacket("udp", "198.18.0.12:0")
	if err != nil {
		t.Fatal(err)
	}
	uc, err := h0.DialContext(ctx, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("ping"))
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || !strings.HasPrefix(from.String(), "198.18.0.10:") {
		t.Errorf("UDP from host 0: %q from %v, %v", buf[:n], from, err)
	}

	// A host's link down cuts it off; up again, it is back.
	h0.LinkDown()
	mustNotReach(t, h2, ln.Addr().String())
	h0.LinkUp()
	Eventually(t, 10*time.Second, func() bool {
		_, err := who(ctx, h2, ln.Addr().String())
		return err == nil
	}, "host 2 does not reach host 0 after its link is up again")

	// A partition cuts two hosts off from each other, not from the third.
	ln1, err := h1.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	serveWho(ln1)
	h0.Partition(h2)
	mustNotReach(t, h2, ln.Addr().String())
	mustReach(t, h1, ln.Addr().String())
	mustReach(t, h2, "198.18.0.11:7000")
	mustReach(t, h0, "198.18.0.11:7000")
	nt.Heal()
	mustReach(t, h2, ln.Addr().String())
}

// TestHostsProcess checks that a process started in a host runs in the
// host's network namespace under its own PID, and that the bed leaves no
// namespace or process behind.
func TestHostsProcess(t *testing.T) {
	var names []string
	var pid int
	t.Run("bed", func(t *testing.T) {
		nt := StartHosts(t, 2)
		h := nt.Hosts[1]
		names = []string{nt.swNS, nt.Hosts[0].Name(), h.Name()}
		p := h.Start(t, "sleep", "600")
		pid = p.PID()
		// ip netns exec becomes sleep under the same PID.
		Eventually(t, 10*time.Second, func() bool {
			comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			return err == nil && strings.TrimSpace(string(comm)) == "sleep"
		}, "process %d is not sleep", pid)
		var inHost, inProc unix.Stat_t
		if err := unix.Stat("/run/netns/"+h.Name(), &inHost); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &inProc); err != nil {
			t.Fatal(err)
		}
		if inHost.Ino != inProc.Ino {
			t.Errorf("sleep runs in network namespace %d, host %s is %d", inProc.Ino, h.Name(), inHost.Ino)
		}
		out, err := h.Command(context.Background(), "ip", "-4", "-o", "addr", "show", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "198.18.0.11/24") {
			t.Errorf("eth0 of host 1 (%v): %s", err, out)
		}
	})
	for _, name := range names {
		if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind (%v)", name, err)
		}
	}
	if pid != 0 && unix.Kill(pid, 0) != syscall.ESRCH {
		t.Errorf("process %d left running", pid)
	}
}

// TestHostsEtcd runs a three-member etcd cluster, a member on each host,
// and checks that it outlives the loss of one host.
func TestHostsEtcd(t *testing.T) {
	nt := StartHosts(t, 3)
	c := StartEtcdOnHosts(t, nt.Hosts)
	h0, h2 := nt.Hosts[0], nt.Hosts[2]
	cli0 := h0.EtcdClient(c.Members[0].ClientURL)
	cli2 := h2.EtcdClient(c.Members[2].ClientURL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := cli0.Put(ctx, "k", "v0"); err != nil {
		t.Fatalf("put through host 0's member: %v", err)
	}
	if got := get(ctx, t, cli2, "k"); got != "v0" {
		t.Fatalf("get through host 2's member: %q, want v0", got)
	}

	h0.LinkDown()
	mustNotReach(t, h2, c.Members[0].ClientURL[len("http://"):])
	Eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cli2.Put(ctx, "k", "v1")
		return err == nil
	}, "the two members left do not take a put")
	if got := get(ctx, t, cli2, "k"); got != "v1" {
		t.Fatalf("get after host 0 went down: %q, want v1", got)
	}
	if _, err := c.Client().Get(ctx, "k"); err != nil {
		t.Fatalf("the cluster's client: %v", err)
	}

	h0.LinkUp()
	Eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		r, err := cli0.Get(ctx, "k") // linearizable: host 0's member is back in the quorum
		return err == nil && len(r.Kvs) == 1 && string(r.Kvs[0].Value) == "v1"
	}, "host 0's member does not serve v1 after its link is up again")

	// Members on hosts stop and start as those on loopback.
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader.Stop()
	if next, err := c.WaitLeader(ctx); err != nil || next == leader {
		t.Fatalf("leader after %s stopped: %v, %v", leader.Name, next, err)
	}
	leader.Start()
	if got := get(ctx, t, c.Client(), "k"); got != "v1" {
		t.Fatalf("get after a restart: %q, want v1", got)
	}
}

// get reads key through cli, failing t on error.
func get(ctx context.Context, t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

// TestHostsLoopbackEtcd checks that a loopback cluster, which shares its
// start and leader code with clusters on hosts, still starts and serves.
func TestHostsLoopbackEtcd(t *testing.T) {
	c := StartEtcdCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if m, err := c.Leader(ctx); err != nil || m != c.Members[0] {
		t.Fatalf("leader: %v, %v", m, err)
	}
}
