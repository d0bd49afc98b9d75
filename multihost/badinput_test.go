package multihost

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// TestAgentBadInput: a VIP range that would capture the host's own
// traffic, the agent's listen addresses or etcd, one too small, or one
// mixing IPv4 and IPv6, is refused at start naming -vip-cidr; an agent that
// may not make the range local says what to run and exits non-zero before
// it listens anywhere.
func TestAgentBadInput(t *testing.T) {
	nt := testenv.StartHosts(t, 1)
	h := nt.Hosts[0]
	hostAddr := h.Addr().String()
	base := func(extra ...string) []string {
		args := []string{"agent", "-etcd", "http://" + hostAddr + ":2379", "-registrar", hostAddr + ":9000",
			"-dns", "127.0.0.1:5353", "-http", "127.0.0.1:8081"}
		return append(args, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"overlaps the host's address", base("-vip-cidr", "198.18.0.0/16"), "-vip-cidr"},
		{"holds the registrar's address", append(base("-vip-cidr", "198.19.0.0/16"), "-registrar", "198.19.0.5:9000"), "-vip-cidr"},
		{"holds an etcd endpoint", append(base("-vip-cidr", "198.19.0.0/16"), "-etcd", "http://198.19.0.9:2379"), "-vip-cidr"},
		{"smaller than /24", base("-vip-cidr", "198.19.0.0/25"), "smaller than /24"},
		{"IPv4-mapped IPv6", base("-vip-cidr", "::ffff:198.19.0.0/112"), "mixes IPv4 and IPv6"},
		{"not a range", base("-vip-cidr", "198.19.0.0"), "-vip-cidr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := h.Command(ctx, bin.netsel, tc.args...).CombinedOutput()
			if code := exitCode(err); code != 1 {
				t.Fatalf("exit %d (%v), want 1; output:\n%s", code, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not name %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "netsel ready") {
				t.Errorf("the agent started before refusing:\n%s", out)
			}
		})
	}

	t.Run("no CAP_NET_ADMIN", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("setpriv (util-linux) is needed to drop the capability")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append([]string{"--inh-caps=-net_admin", "--bounding-set=-net_admin", bin.netsel}, base("-vip-cidr", "198.19.0.0/16")...)
		out, err := h.Command(ctx, "setpriv", args...).CombinedOutput()
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit %d (%v), want 1; output:\n%s", code, err, out)
		}
		if !strings.Contains(string(out), `ip route add local 198.19.0.0/16 dev lo`) {
			t.Errorf("output does not give the command to run:\n%s", out)
		}
		if strings.Contains(string(out), "netsel ready") || strings.Contains(string(out), "registrar listening") {
			t.Errorf("the agent half-started:\n%s", out)
		}
		routes, err := h.Command(ctx, "ip", "route", "show", "table", "local", "198.19.0.0/16").CombinedOutput()
		if err != nil || strings.TrimSpace(string(routes)) != "" {
			t.Errorf("local route after the refusal: %q %v", routes, err)
		}
	})
}

// exitCode returns a command's exit status: 0 for nil, -1 when it did not
// exit normally.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Exited() {
			return ws.ExitStatus()
		}
	}
	return -1
}

// localRoute returns host i's local route of the VIP range, empty when it
// has none.
func (c *cluster) localRoute(ctx context.Context, i int) string {
	c.t.Helper()
	out, err := c.host(i).Command(ctx, "ip", "route", "show", "table", "local", vipCIDR).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ip route show on host %d: %v\n%s", i, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestAgentRoute: the agent makes the VIP range local to its host while it
// runs and removes the route on a clean stop.
func TestAgentRoute(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r := c.localRoute(ctx, hostC); !strings.Contains(r, "local "+vipCIDR+" dev lo") {
		t.Fatalf("host C's local route of %s while its agent runs: %q", vipCIDR, r)
	}
	if killed := c.agents[hostC].Stop(os.Interrupt, 20*time.Second); killed {
		t.Fatal("agent did not stop within 20s of SIGINT")
	}
	if r := c.localRoute(ctx, hostC); r != "" {
		t.Errorf("host C keeps the route after its agent stopped: %q", r)
	}
	if !strings.Contains(c.agents[hostC].Log(), "netsel stopped") {
		t.Errorf("the agent did not stop cleanly:\n%s", c.agents[hostC].Log())
	}
}
