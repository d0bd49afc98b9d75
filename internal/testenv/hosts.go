//go:build linux

package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The network namespaces of a test bed are named ns<pid>-<seq>-sw (the
// switch) and ns<pid>-<seq>-h<i> (host i), pid being the test binary's.
// StartHosts removes those whose test binary is gone (one killed by a
// timeout runs no cleanup), taking every test binary to share its PID
// namespace; to remove them by hand:
//
//	ip netns list | awk '/^ns[0-9]+-[0-9]+-(sw|h[0-9]+)/ {print $1}' | xargs -r -n1 ip netns del
var (
	netnsSeq     atomic.Int64
	staleNetnsRE = regexp.MustCompile(`^ns([0-9]+)-[0-9]+-(sw|h[0-9]+)$`)
)

// HostSubnet is the subnet of a test bed's hosts: host i has address
// 198.18.0.(10+i). It is reachable only inside the bed's namespaces.
var HostSubnet = netip.MustParsePrefix("198.18.0.0/24")

// blackholeMAC is the link-layer address a partitioned host sends its peer's
// packets to: no port of the bridge has it, so they are lost.
const blackholeMAC = "02:00:00:00:00:00"

// Net is a test bed of hosts, each a network namespace whose eth0 is
// plugged into one bridge that lives in a namespace of its own. Nothing in
// it is routed to or from the machine's own network.
type Net struct {
	// Hosts are the bed's hosts, host i at 198.18.0.(10+i).
	Hosts []*Host

	t    testing.TB
	id   string // ns<pid>-<seq>
	swNS string // the switch namespace

	mu    sync.Mutex
	procs []*HostProcess
	cuts  map[[2]*Host]bool // partitioned pairs
}

// Host is one host of a Net: a network namespace with lo and eth0 up.
type Host struct {
	net   *Net
	index int
	ns    string
	addr  netip.Addr
	port  string // eth0's peer on the bridge, in the switch namespace

	httpOnce   sync.Once
	httpClient *http.Client
}

// StartHosts creates a Net of n hosts and deletes it, after killing the
// processes started in it, when the test ends. It skips the test without
// the ip tool or without CAP_NET_ADMIN and CAP_SYS_ADMIN.
func StartHosts(t testing.TB, n int) *Net {
	t.Helper()
	skipWithoutNetns(t)
	if n < 1 || n > 240 {
		t.Fatalf("StartHosts: %d hosts (1 to 240)", n)
	}
	removeStaleNetns(t)
	id := fmt.Sprintf("ns%d-%d", os.Getpid(), netnsSeq.Add(1))
	nt := &Net{t: t, id: id, swNS: id + "-sw", cuts: map[[2]*Host]bool{}}
	for i := range n {
		nt.Hosts = append(nt.Hosts, &Host{
			net:   nt,
			index: i,
			ns:    fmt.Sprintf("%s-h%d", id, i),
			addr:  netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}),
			port:  fmt.Sprintf("h%d", i),
		})
	}
	t.Cleanup(nt.close)
	if err := nt.build(); err != nil {
		t.Fatalf("start %d hosts: %v", n, err)
	}
	return nt
}

// build creates the switch namespace, its bridge and the hosts.
func (nt *Net) build() error {
	if err := runIP("netns", "add", nt.swNS); err != nil {
		return err
	}
	if err := runIP("-n", nt.swNS, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := runIP("-n", nt.swNS, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for _, h := range nt.Hosts {
		if err := h.build(); err != nil {
			return fmt.Errorf("host %d: %w", h.index, err)
		}
	}
	return nil
}

// build creates h's namespace and its veth pair, the pair directly inside
// the switch namespace with one end moved at once into h's.
func (h *Host) build() error {
	sw := h.net.swNS
	if err := runIP("netns", "add", h.ns); err != nil {
		return err
	}
	// No IPv6: the hosts speak IPv4 on 198.18.0.0/24 and nothing else.
	if err := h.do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0)
	}); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("disable IPv6: %w", err)
	}
	steps := [][]string{
		{"-n", sw, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"-n", sw, "link", "set", h.port, "master", "br0"},
		{"-n", sw, "link", "set", h.port, "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
		{"-n", h.ns, "addr", "add", netip.PrefixFrom(h.addr, HostSubnet.Bits()).String(), "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
	}
	for _, args := range steps {
		if err := runIP(args...); err != nil {
			return err
		}
	}
	return nil
}

// close kills the processes started in the bed and deletes its namespaces.
func (nt *Net) close() {
	nt.mu.Lock()
	procs := nt.procs
	nt.procs = nil
	nt.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, h := range nt.Hosts {
		if err := deleteNetns(h.ns); err != nil {
			nt.t.Errorf("delete host namespace: %v", err)
		}
	}
	if err := deleteNetns(nt.swNS); err != nil {
		nt.t.Errorf("delete switch namespace: %v", err)
	}
}

// Addr returns h's address, 198.18.0.(10+i) for host i.
func (h *Host) Addr() netip.Addr { return h.addr }

// Name returns the name of h's network namespace, as ip netns knows it.
func (h *Host) Name() string { return h.ns }

// Command returns a command that runs name with args inside h. ip netns
// exec executes the program itself, so the command's process is the
// program's.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// LinkDown takes h's port on the bridge down: h loses every other host, as
// when it crashes or its cable is pulled, while its processes keep running.
func (h *Host) LinkDown() { h.setLink("down") }

// LinkUp puts h's port on the bridge back up after LinkDown.
func (h *Host) LinkUp() { h.setLink("up") }

func (h *Host) setLink(state string) {
	h.net.t.Helper()
	if err := runIP("-n", h.net.swNS, "link", "set", h.port, state); err != nil {
		h.net.t.Fatalf("host %d link %s: %v", h.index, state, err)
	}
}

// Partition cuts h off from each host of from, both ways, while both keep
// every other host: their packets to each other are silently lost, as in a
// network partition (each sends the other's to a link-layer address that no
// one has). Net.Heal undoes it.
func (h *Host) Partition(from ...*Host) {
	nt := h.net
	nt.t.Helper()
	nt.mu.Lock()
	defer nt.mu.Unlock()
	for _, o := range from {
		if o == h || nt.cuts[pair(h, o)] {
			continue
		}
		for _, s := range [][2]*Host{{h, o}, {o, h}} {
			err := runIP("-n", s[0].ns, "neigh", "replace", s[1].addr.String(),
				"lladdr", blackholeMAC, "nud", "permanent", "dev", "eth0")
			if err != nil {
				nt.t.Fatalf("partition host %d from host %d: %v", h.index, o.index, err)
			}
		}
		nt.cuts[pair(h, o)] = true
	}
}

// Heal undoes every Partition: the hosts find each other again.
func (nt *Net) Heal() {
	nt.t.Helper()
	nt.mu.Lock()
	defer nt.mu.Unlock()
	for p := range nt.cuts {
		for _, s := range [][2]*Host{{p[0], p[1]}, {p[1], p[0]}} {
			if err := runIP("-n", s[0].ns, "neigh", "del", s[1].addr.String(), "dev", "eth0"); err != nil {
				nt.t.Fatalf("heal host %d and host %d: %v", p[0].index, p[1].index, err)
			}
		}
		delete(nt.cuts, p)
	}
}

// pair returns a and b in the order of their indexes.
func pair(a, b *Host) [2]*Host {
	if a.index > b.index {
		a, b = b, a
	}
	return [2]*Host{a, b}
}

// runIP runs the ip tool with args.
func runIP(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// deleteNetns deletes the namespace called name, if it is there.
func deleteNetns(name string) error {
	if _, err := os.Stat("/run/netns/" + name); os.IsNotExist(err) {
		return nil
	}
	return runIP("netns", "del", name)
}

// removeStaleNetns deletes the bed namespaces whose test binary is gone:
// one killed by a timeout, or a signal, runs no cleanup.
func removeStaleNetns(t testing.TB) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleNetnsRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || unix.Kill(pid, 0) != syscall.ESRCH {
			continue // its test binary may still be running
		}
		if err := deleteNetns(e.Name()); err != nil {
			t.Logf("remove a stale test namespace: %v", err)
		}
	}
}

// skipWithoutNetns skips t unless the ip tool is there and this process may
// create and enter network namespaces.
func skipWithoutNetns(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("test hosts need the ip tool (iproute2): %v", err)
	}
	caps, err := effectiveCaps()
	if err != nil {
		t.Skipf("test hosts need CAP_NET_ADMIN and CAP_SYS_ADMIN; cannot read them: %v", err)
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}} {
		if caps&(1<<c.bit) == 0 {
			t.Skipf("test hosts need %s to create network namespaces (run the test as root)", c.name)
		}
	}
}

// effectiveCaps returns this process's effective capability set.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}
