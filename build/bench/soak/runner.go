package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// runner is the NetSel runner binary (build/netsel) as a subprocess:
// registrar, DNS server, HTTP proxy and VIP proxy in one process, over the
// soak's etcd cluster.
type runner struct {
	bin     string
	args    []string
	logPath string
	regURL  string
	dnsAddr string
	httpURL string

	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func newRunner(bin, logPath string, etcdURLs []string, vipCIDR string) (*runner, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	r := &runner{
		bin:     bin,
		logPath: logPath,
		regURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		dnsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
	}
	r.args = []string{
		"-etcd", strings.Join(etcdURLs, ","),
		"-registrar", strings.TrimPrefix(r.regURL, "http://"),
		"-dns", r.dnsAddr,
		"-http", strings.TrimPrefix(r.httpURL, "http://"),
		"-vip-proxy",
		"-vip-cidr", vipCIDR,
		"-log-level", "warn",
	}
	return r, nil
}

// start launches the runner; its output is appended to logPath.
func (r *runner) start() error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "---- soak: runner start #%d at %s\n", r.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start runner: %w", err)
	}
	r.cmd, r.exited = cmd, exited
	return nil
}

func (r *runner) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *runner) pid() int {
	if !r.running() {
		return 0
	}
	return r.cmd.Process.Pid
}

// signal sends sig and waits for the runner to exit (SIGKILL after grace).
func (r *runner) signal(sig syscall.Signal, grace time.Duration) {
	if !r.running() {
		return
	}
	r.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-r.exited:
			return
		case <-time.After(grace):
			r.cmd.Process.Kill()
		}
	}
	<-r.exited
}

// waitReady waits until the registrar answers /v1/health with 200 and the
// DNS server answers an A query for probe (a name in the zone) with
// NOERROR; it returns how long each took from since.
func (r *runner) waitReady(ctx context.Context, probe string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	regOK, dnsOK := false, false
	for !regOK || !dnsOK {
		if !r.running() {
			return fmt.Errorf("runner exited (%v); see %s", r.cmd.ProcessState, r.logPath)
		}
		if !regOK {
			if resp, err := hc.Get(r.regURL + "/v1/health"); err == nil {
				resp.Body.Close()
				regOK = resp.StatusCode == http.StatusOK
			}
		}
		if !dnsOK {
			m := new(dns.Msg).SetQuestion(probe, dns.TypeA)
			c := &dns.Client{Timeout: time.Second}
			if in, _, err := c.ExchangeContext(ctx, m, r.dnsAddr); err == nil && in.Rcode != dns.RcodeServerFailure && in.Rcode != dns.RcodeRefused {
				dnsOK = true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("runner not ready after %v (registrar ok %v, dns ok %v); see %s", timeout, regOK, dnsOK, r.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
