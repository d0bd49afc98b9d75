package vipnet

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hasCaps reports whether this process holds every capability of caps in
// its effective set.
func hasCaps(caps ...int) (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, err
	}
	for _, c := range caps {
		if data[c/32].Effective&(1<<(c%32)) == 0 {
			return false, nil
		}
	}
	return true, nil
}

// dropCap removes capability c from the calling thread's effective and
// permitted sets; the thread must be locked and never unlocked.
func dropCap(c int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	data[c/32].Effective &^= 1 << (c % 32)
	data[c/32].Permitted &^= 1 << (c % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// newNetns creates a network namespace of its own for t, with lo up, and
// deletes it when t ends. It skips t when the process may not.
func newNetns(t *testing.T) string {
	t.Helper()
	ok, err := hasCaps(unix.CAP_NET_ADMIN, unix.CAP_SYS_ADMIN)
	if err != nil {
		t.Fatalf("reading capabilities: %v", err)
	}
	if !ok {
		t.Skip("needs CAP_NET_ADMIN and CAP_SYS_ADMIN to create a network namespace and route in it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	name := fmt.Sprintf("vipnet-%d-%08x", os.Getpid(), h.Sum32())
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// ip runs the ip command with args and returns its output; it fails t on
// error.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// localRoutes returns the local table of namespace ns as "ip route show"
// prints it (IPv6 too when v6).
func localRoutes(t *testing.T, ns string, v6 bool) string {
	t.Helper()
	if v6 {
		return ip(t, "-n", ns, "-6", "route", "show", "table", "local")
	}
	return ip(t, "-n", ns, "route", "show", "table", "local")
}

// hasRoute reports whether the local table of ns holds a line starting
// with prefix, e.g. "local 198.19.0.0/16 dev lo".
func hasRoute(t *testing.T, ns string, v6 bool, prefix string) bool {
	t.Helper()
	for line := range strings.Lines(localRoutes(t, ns, v6)) {
		if strings.HasPrefix(line, prefix+" ") || strings.TrimSpace(line) == prefix {
			return true
		}
	}
	return false
}

// inNetns runs fn on an OS thread of its own that has entered namespace
// ns and returns fn's error. The thread is never unlocked, so it ends with
// fn rather than going back to the scheduler in the wrong namespace. fn
// must create every socket on its own goroutine.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Set unless fn returns: t.FailNow on this goroutine ends it early.
		err := errors.New("the namespace's goroutine stopped before fn returned")
		defer func() { errc <- err }()
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, oerr := os.Open(filepath.Join("/run/netns", ns))
		if oerr != nil {
			err = oerr
			return
		}
		defer f.Close()
		if serr := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); serr != nil {
			err = fmt.Errorf("entering namespace %s: %w", ns, serr)
			return
		}
		err = fn()
	}()
	return <-errc
}
