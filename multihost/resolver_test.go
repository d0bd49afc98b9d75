package multihost

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
)

// TestHostResolver: an agent whose DNS listens on port 53 is its host's
// resolver: names outside the zone go to the nameservers of the host's
// resolv.conf (here a resolver on another test host), the zone is answered
// by NetSel.
func TestHostResolver(t *testing.T) {
	nt := testenv.StartHosts(t, 3)
	etcd := testenv.StartEtcdOnHosts(t, nt.Hosts)
	a, b := nt.Hosts[0], nt.Hosts[1]

	// Host B runs the upstream resolver.
	pc, err := b.ListenPacket("udp", netip.AddrPortFrom(b.Addr(), 53).String())
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartUpstream(t, pc)

	// Host A's resolv.conf names host B's resolver and the agent itself;
	// `ip netns exec` mounts /etc/netns/<name>/resolv.conf over
	// /etc/resolv.conf.
	dir := filepath.Join("/etc/netns", a.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := "nameserver 127.0.0.1\nnameserver " + b.Addr().String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	agent := a.Start(t, bin.netsel, "agent", "-etcd", etcd.Endpoints()[0],
		"-registrar", "", "-http", "", "-vip-cidr", vipCIDR, "-dns", "127.0.0.1:53")
	testenv.Eventually(t, 60*time.Second, func() bool {
		if !agent.Running() {
			t.Fatalf("agent exited: %v\n%s", agent.State(), agent.Log())
		}
		return agent.Running() && strings.Contains(agent.Log(), "netsel ready")
	}, "agent not ready")

	ask := func(name string) (*dns.Msg, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return queryOn(ctx, a, "127.0.0.1:53", name, dns.TypeA)
	}
	var in *dns.Msg
	testenv.Eventually(t, 10*time.Second, func() bool {
		in, err = ask("www.example.org.")
		return err == nil && in.Rcode == dns.RcodeSuccess && len(in.Answer) == 1
	}, "host A's agent does not forward www.example.org. to host B's resolver")
	if got := in.Answer[0].(*dns.A).A.String(); got != testenv.UpstreamAnswer {
		t.Errorf("www.example.org. A %s, want the upstream's %s", got, testenv.UpstreamAnswer)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		in, err = ask("nosuch.netsel.")
		return err == nil && in.Rcode == dns.RcodeNameError
	}, "nosuch.netsel. is not NXDOMAIN from NetSel")
}
