package testenv

import (
	"sync"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	// The CoreDNS plugins test Corefiles use besides the one under test.
	// Tests import the plugin they exercise themselves (e.g. netsel).
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// corednsMu serializes CoreDNS starts: coredns/caddy and CoreDNS keep process-wide state.
var corednsMu sync.Mutex

// StartCoreDNS starts CoreDNS in-process from corefile and returns the UDP
// and TCP addresses of its first server. Listen on port 0 with a loopback
// bind to get free ports, e.g.
//
//	netsel.:0 {
//	    bind 127.0.0.1
//	    netsel { endpoint http://127.0.0.1:2379 }
//	}
//
// The server is stopped, and its shutdown hooks run, when the test ends. A
// Corefile that does not start fails the test; use CoreDNSError to test
// start-up errors.
func StartCoreDNS(t testing.TB, corefile string) (udpAddr, tcpAddr string) {
	t.Helper()
	inst, err := startCoreDNS(corefile)
	if err != nil {
		t.Fatalf("start CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	srvs := inst.Servers()
	if len(srvs) == 0 {
		t.Fatalf("CoreDNS started no server from:\n%s", corefile)
	}
	if a := srvs[0].LocalAddr(); a != nil {
		udpAddr = a.String()
	}
	if a := srvs[0].Addr(); a != nil {
		tcpAddr = a.String()
	}
	return udpAddr, tcpAddr
}

// CoreDNSError tries to start CoreDNS from corefile and returns the start-up
// error, or nil after stopping the server if it started.
func CoreDNSError(corefile string) error {
	inst, err := startCoreDNS(corefile)
	if err != nil {
		return err
	}
	inst.Stop()
	inst.ShutdownCallbacks()
	return nil
}

func startCoreDNS(corefile string) (*caddy.Instance, error) {
	corednsMu.Lock()
	defer corednsMu.Unlock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	return caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
}
