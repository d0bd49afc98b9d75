//go:build linux

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/childproc"
	"github.com/netsel/netsel/internal/etcdproc"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EtcdBinary is the etcd server the process helpers run: Debian's
// etcd-server package (etcd 3.4), which CI installs.
const EtcdBinary = "/usr/bin/etcd"

// EtcdCluster is a cluster of etcd server processes, on loopback
// (StartEtcdCluster) or one on each test host (StartEtcdOnHosts): real
// separate processes that a test can stop, kill, pause and start again on
// the same data directories and ports. Every member is killed when the test
// ends.
type EtcdCluster struct {
	Members []*EtcdMember
	t       testing.TB
}

// EtcdMember is one etcd server process of an EtcdCluster.
type EtcdMember struct {
	// Name is the member's name, e.g. "m0".
	Name string
	// ClientURL is where clients reach it, e.g. http://127.0.0.1:40123.
	ClientURL string
	// PeerURL is where the other members reach it.
	PeerURL string
	// Dir is its data directory, kept across Stop and Start.
	Dir string
	// Host is the test host it runs on (StartEtcdOnHosts), nil for a
	// member on loopback.
	Host *Host

	t    testing.TB
	args []string
	log  *tailBuffer

	mu     sync.Mutex
	proc   *childproc.Process // nil until first started
	paused bool
}

// StartEtcdProcess starts a single-member etcd cluster of EtcdBinary on
// free loopback ports and waits until it serves. It skips the test when the
// binary is missing.
func StartEtcdProcess(t testing.TB) *EtcdCluster { return StartEtcdCluster(t, 1) }

// StartEtcdProcessArgs is StartEtcdProcess with extra etcd command-line
// flags, e.g. "--quota-backend-bytes", "4194304".
func StartEtcdProcessArgs(t testing.TB, extra ...string) *EtcdCluster {
	t.Helper()
	return startEtcdCluster(t, 1, extra)
}

// StartEtcdCluster starts an n-member etcd cluster of EtcdBinary on free
// loopback ports, each member with its data in a temporary directory, and
// waits until it has a leader. It skips the test when the binary is missing.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	return startEtcdCluster(t, n, nil)
}

func startEtcdCluster(t testing.TB, n int, extra []string) *EtcdCluster {
	t.Helper()
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Skipf("%s not found (install Debian's etcd-server package to run this test): %v", EtcdBinary, err)
	}
	if n < 1 {
		t.Fatalf("StartEtcdCluster: %d members", n)
	}
	ports := freePorts(t, 2*n)
	specs := make([]etcdproc.Member, n)
	for i := range specs {
		specs[i] = etcdproc.Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Dir:       filepath.Join(t.TempDir(), "etcd"),
		}
	}
	token := fmt.Sprintf("netsel-test-%d-%d", os.Getpid(), ports[0])
	return startMembers(t, specs, token, nil, extra)
}

// startMembers starts the cluster of specs, member i on hosts[i] when
// hosts is not nil, each with the extra etcd arguments, and waits until it
// has a leader.
func startMembers(t testing.TB, specs []etcdproc.Member, token string, hosts []*Host, extra []string) *EtcdCluster {
	t.Helper()
	c := &EtcdCluster{t: t}
	for i, spec := range specs {
		m := &EtcdMember{
			Name:      spec.Name,
			ClientURL: spec.ClientURL,
			PeerURL:   spec.PeerURL,
			Dir:       spec.Dir,
			t:         t,
			args:      append(etcdproc.Args(spec, specs, token), extra...),
			log:       &tailBuffer{max: 64 << 10},
		}
		if hosts != nil {
			m.Host = hosts[i]
		}
		c.Members = append(c.Members, m)
	}
	c.startAll()
	return c
}

// startAll starts every member of c, kills them all when the test ends, and
// waits until the cluster has a leader.
func (c *EtcdCluster) startAll() {
	t := c.t
	t.Helper()
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
		if t.Failed() {
			for _, m := range c.Members {
				t.Logf("etcd member %s (%s) log, last lines:\n%s", m.Name, m.ClientURL, m.log.String())
			}
		}
	})
	// A member serves clients only once it has joined a quorum: launch
	// them all before waiting for any.
	for _, m := range c.Members {
		if err := m.launch(); err != nil {
			t.Fatalf("start etcd member %s: %v", m.Name, err)
		}
	}
	for _, m := range c.Members {
		if err := m.waitServing(); err != nil {
			t.Fatalf("start etcd member %s: %v", m.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatalf("etcd cluster of %d: %v", len(c.Members), err)
	}
}

// Endpoints returns the client URLs of every member.
func (c *EtcdCluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.ClientURL
	}
	return eps
}

// URL returns the client URL of the first member: the one URL of a
// single-member cluster.
func (c *EtcdCluster) URL() string { return c.Members[0].ClientURL }

// Client returns a client of every member, closed when the test ends. On
// test hosts it reaches each member from the member's own host, so no
// partition keeps it from a running member; Host.EtcdClient places a client
// on one host instead.
func (c *EtcdCluster) Client() *clientv3.Client {
	c.t.Helper()
	if dial := c.dial(); dial != nil {
		return newClientDialer(c.t, dial, c.Endpoints())
	}
	return NewClient(c.t, c.Endpoints()...)
}

// Leader returns the member that is the leader according to the running
// members it asks through the maintenance Status API, or an error when no
// running member reports one.
func (c *EtcdCluster) Leader(ctx context.Context) (*EtcdMember, error) {
	u, err := etcdproc.Leader(ctx, c.runningURLs(), c.dial())
	if err != nil {
		return nil, err
	}
	return c.member(u), nil
}

// WaitLeader polls Leader until a member leads or ctx ends.
func (c *EtcdCluster) WaitLeader(ctx context.Context) (*EtcdMember, error) {
	u, err := etcdproc.WaitLeader(ctx, c.runningURLs, c.dial())
	if err != nil {
		return nil, err
	}
	return c.member(u), nil
}

// runningURLs returns the client URLs of the running members.
func (c *EtcdCluster) runningURLs() []string {
	var urls []string
	for _, m := range c.Members {
		if m.Running() {
			urls = append(urls, m.ClientURL)
		}
	}
	return urls
}

// member returns the member whose client URL is url.
func (c *EtcdCluster) member(url string) *EtcdMember {
	for _, m := range c.Members {
		if m.ClientURL == url {
			return m
		}
	}
	return nil
}

// Running reports whether m's process is running (paused counts).
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && m.proc.Running()
}

// Start starts m again on its data directory and ports after Stop or Kill,
// and waits until it serves clients, which takes a quorum: in a cluster
// where too few members run, start the others first with Launch.
func (m *EtcdMember) Start() {
	m.t.Helper()
	if err := m.launch(); err != nil {
		m.t.Fatalf("restart etcd member %s: %v", m.Name, err)
	}
	if err := m.waitServing(); err != nil {
		m.t.Fatalf("restart etcd member %s: %v", m.Name, err)
	}
}

// Launch starts m again on its data directory and ports after Stop or
// Kill, without waiting for it to serve.
func (m *EtcdMember) Launch() {
	m.t.Helper()
	if err := m.launch(); err != nil {
		m.t.Fatalf("restart etcd member %s: %v", m.Name, err)
	}
}

// launch starts m's process; it is killed if the test binary dies without
// cleaning up (a timeout panic).
func (m *EtcdMember) launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && m.proc.Running() {
		return errors.New("already running")
	}
	proc, err := startIn(m.Host, EtcdBinary, m.args, m.log)
	if err != nil {
		return err
	}
	m.proc, m.paused = proc, false
	return nil
}

// waitServing waits until m answers the Status call on its client URL.
func (m *EtcdMember) waitServing() error {
	m.mu.Lock()
	proc := m.proc
	m.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-proc.Exited():
			return fmt.Errorf("exited at start (%v); log:\n%s", proc.State(), m.log.String())
		default:
		}
		if _, err := etcdproc.Status(context.Background(), m.ClientURL, m.dial()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("not answering on %s after 20s: %v; log:\n%s", m.ClientURL, err, m.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops m gracefully (SIGTERM; SIGKILL after 10s) and waits for it to
// exit. A leader stopped this way hands its leadership over first.
func (m *EtcdMember) Stop() { m.signal(syscall.SIGTERM, 10*time.Second) }

// Kill kills m (SIGKILL) and waits for it to exit: a crash, with no
// leadership hand-over. Killing a member that is not running does nothing.
func (m *EtcdMember) Kill() { m.signal(syscall.SIGKILL, 0) }

// Pause freezes m's process (SIGSTOP): its connections stay open but
// nothing answers, as with a hung server or a network black hole.
func (m *EtcdMember) Pause() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.paused {
		if err := m.proc.Signal(syscall.SIGSTOP); err != nil {
			m.t.Errorf("pause etcd member %s: %v", m.Name, err)
			return
		}
		m.paused = true
	}
}

// Resume lets a paused m run again (SIGCONT).
func (m *EtcdMember) Resume() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && m.paused {
		if err := m.proc.Signal(syscall.SIGCONT); err != nil {
			m.t.Errorf("resume etcd member %s: %v", m.Name, err)
			return
		}
		m.paused = false
	}
}

// signal sends sig to m and waits for it to exit, killing it after grace.
func (m *EtcdMember) signal(sig syscall.Signal, grace time.Duration) {
	m.mu.Lock()
	proc, paused := m.proc, m.paused
	m.paused = false
	m.mu.Unlock()
	if proc == nil || !proc.Running() {
		return
	}
	proc.Signal(sig)
	if paused && sig != syscall.SIGKILL {
		proc.Signal(syscall.SIGCONT) // a stopped process handles no SIGTERM
	}
	if proc.Wait(grace) {
		m.t.Logf("etcd member %s did not stop within %v; killed it", m.Name, grace)
	}
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
