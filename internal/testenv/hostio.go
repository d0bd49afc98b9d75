//go:build linux

package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netsel/netsel/internal/childproc"
)

// HostProcess is a long-running process started in a Host by Host.Start.
// It is killed when the test ends, if it has not exited before.
type HostProcess struct {
	*childproc.Process
	// Name is the program's name, as given to Start.
	Name string

	log *tailBuffer
}

// Start starts name with args inside h, its output kept (the last 64 KiB)
// for Log and logged if the test fails. The process is SIGKILLed when the
// test ends and if the test binary dies first.
func (h *Host) Start(t testing.TB, name string, args ...string) *HostProcess {
	t.Helper()
	p := &HostProcess{Name: name, log: &tailBuffer{max: 64 << 10}}
	proc, err := startIn(h, name, args, p.log)
	if err != nil {
		t.Fatalf("host %d: %v", h.index, err)
	}
	p.Process = proc
	h.net.mu.Lock()
	h.net.procs = append(h.net.procs, p)
	h.net.mu.Unlock()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s on host %d (%s), last output:\n%s", name, h.index, h.addr, p.Log())
		}
	})
	return p
}

// Kill kills p (SIGKILL), by its PID, and waits for it to exit. Killing a
// process that has exited does nothing.
func (p *HostProcess) Kill() { p.Stop(syscall.SIGKILL, 0) }

// Log returns the last 64 KiB of p's output.
func (p *HostProcess) Log() string { return p.log.String() }

// startIn starts bin inside h, or in this process's namespace when h is
// nil.
func startIn(h *Host, bin string, args []string, out io.Writer) (*childproc.Process, error) {
	if h == nil {
		return childproc.Start(bin, args, out)
	}
	return childproc.Start("ip", append([]string{"netns", "exec", h.ns, bin}, args...), out)
}

// DialContext connects to address, an IP address and port (no host names:
// they would be looked up outside h), from inside h. The connection stays
// in h's network namespace for its life.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("dial %s from host %d: %w", address, h.index, err)
	}
	var c net.Conn
	err := h.do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen announces on the local address inside h, e.g. ":8080" or
// "198.18.0.10:0". The listener is closed when the test ends.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, err
	}
	h.net.t.Cleanup(func() { ln.Close() })
	return ln, nil
}

// ListenPacket is Listen for packet networks such as "udp".
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, err
	}
	h.net.t.Cleanup(func() { pc.Close() })
	return pc, nil
}

// HTTPClient returns h's HTTP client, whose connections are dialed from
// inside h; its URLs must name IP addresses. Its idle connections are
// closed when the test ends.
func (h *Host) HTTPClient() *http.Client {
	h.httpOnce.Do(func() {
		tr := &http.Transport{
			DialContext:         h.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 16,
		}
		h.net.t.Cleanup(tr.CloseIdleConnections)
		h.httpClient = &http.Client{Transport: tr}
	})
	return h.httpClient
}

// do runs f on an OS thread of its own that has entered h's network
// namespace: the sockets f opens belong to h. The thread is never unlocked,
// so it ends with f's goroutine rather than serve other goroutines from
// inside h.
func (h *Host) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+h.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter host %d: %w", h.index, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter host %d: setns: %w", h.index, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
