package multihost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsel/netsel/internal/testenv"
)

// clusterScript is examples/cluster's script, from this package's directory.
const clusterScript = "../examples/cluster/cluster.sh"

// clusterNamespaces are the namespaces the script creates.
var clusterNamespaces = []string{"netsel-sw", "netsel-h1", "netsel-h2", "netsel-h3"}

// Lines of the script's output: each process it starts, and its temp dir.
var (
	startedRE = regexp.MustCompile(`(?m)^  (\w+) +on (netsel-h\d)  pid (\d+) +log `)
	tempDirRE = regexp.MustCompile(`(?m)^temp dir \(data, logs\): (\S+)$`)
)

// TestClusterExample runs examples/cluster/cluster.sh -check, the README's
// "Many hosts" set-up on namespaces, with the binaries TestMain built: it
// must pass and leave no namespace, process or temp dir behind. A start-up
// that fails half-way (after the agents) must leave nothing either.
func TestClusterExample(t *testing.T) {
	skipWithoutClusterScript(t)

	t.Run("check", func(t *testing.T) {
		out, err := runClusterScript(t, "")
		if err != nil || !strings.Contains(out, "cluster check passed") {
			t.Fatalf("cluster.sh -check: %v\n%s", err, out)
		}
		checkClusterGone(t, out, 8) // 3 etcd members, 3 agents, 2 services
	})

	t.Run("failed start", func(t *testing.T) {
		out, err := runClusterScript(t, "agent")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("cluster.sh -check failing after the agents: %v, want a non-zero exit\n%s", err, out)
		}
		if !strings.Contains(out, "on purpose") {
			t.Errorf("cluster.sh did not fail where told:\n%s", out)
		}
		checkClusterGone(t, out, 6) // 3 etcd members, 3 agents
	})
}

// skipWithoutClusterScript skips t unless the script can run here: as root
// with CAP_NET_ADMIN, with ip, bash and etcd, and none of its namespaces
// there already (another run, or one killed without cleaning up).
func skipWithoutClusterScript(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ip", "bash", "setsid", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("cluster.sh needs %s: %v", tool, err)
		}
	}
	if _, err := os.Stat(testenv.EtcdBinary); err != nil {
		t.Skipf("cluster.sh needs %s (Debian's etcd-server): %v", testenv.EtcdBinary, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("cluster.sh needs root")
	}
	if ok, err := hasNetAdmin(); !ok {
		t.Skipf("cluster.sh needs CAP_NET_ADMIN to create namespaces (%v)", err)
	}
	for _, ns := range clusterNamespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Skipf("namespace %s exists: another cluster.sh runs, or one left it (ip netns del %s)", ns, ns)
		}
	}
}

// hasNetAdmin reports whether this process has CAP_NET_ADMIN.
func hasNetAdmin() (bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0, err
		}
	}
	return false, s.Err()
}

// runClusterScript runs the script with -check, its start-up told to fail
// after step failAt unless that is empty, within 3 minutes, and returns its
// output. Past the deadline the script gets SIGTERM (it cleans up), and
// SIGKILL a minute later. Whatever it leaves is removed when t ends.
func runClusterScript(t *testing.T, failAt string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, clusterScript, "-check")
	cmd.Env = append(os.Environ(), "NETSEL_BIN_DIR="+filepath.Dir(bin.netsel), "NETSEL_CLUSTER_FAIL_AT="+failAt)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	t.Cleanup(func() { removeClusterLeftovers(t, out.String()) })
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("cluster.sh still running after 3 minutes: stopped")
	}
	return out.String(), err
}

// startedProcess is a process the script says it started.
type startedProcess struct {
	role, host string
	pid        int
}

func startedProcesses(out string) []startedProcess {
	var ps []startedProcess
	for _, m := range startedRE.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[3])
		ps = append(ps, startedProcess{role: m[1], host: m[2], pid: pid})
	}
	return ps
}

// running reports whether pid is still one of the script's processes: its
// command line names the test's binaries or the script's etcd cluster (a
// zombie's is empty; a reused PID's is another).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	cmdline := string(b)
	return strings.Contains(cmdline, filepath.Dir(bin.netsel)) || strings.Contains(cmdline, "netsel-example-")
}

// checkClusterGone checks that the script, whose output is out, started
// want processes and left none of them, none of its namespaces and not its
// temp dir.
func checkClusterGone(t *testing.T, out string, want int) {
	t.Helper()
	ps := startedProcesses(out)
	if len(ps) != want {
		t.Errorf("cluster.sh started %d processes, want %d:\n%s", len(ps), want, out)
	}
	for _, p := range ps {
		if running(p.pid) {
			t.Errorf("%s on %s (pid %d) still running after cluster.sh exited", p.role, p.host, p.pid)
		}
	}
	for _, ns := range clusterNamespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
	} else if strings.Contains(string(list), "netsel-") {
		t.Errorf("netsel- namespaces left behind:\n%s", list)
	}
	m := tempDirRE.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("cluster.sh did not say where its temp dir is:\n%s", out)
	} else if _, err := os.Stat(m[1]); err == nil {
		t.Errorf("temp dir %s left behind", m[1])
	}
}

// removeClusterLeftovers kills the processes the script started that still
// run and deletes its namespaces, should the script have failed to. It
// deletes none unless the script went past its check that none was there.
func removeClusterLeftovers(t *testing.T, out string) {
	for _, p := range startedProcesses(out) {
		if running(p.pid) {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	if !strings.Contains(out, "creating hosts") {
		return
	}
	for i := len(clusterNamespaces) - 1; i >= 0; i-- {
		ns := clusterNamespaces[i]
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if b, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, b)
		}
	}
}
