package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/netsel/netsel/internal/etcdproc"
)

// etcdMember is one etcd server process of the soak's cluster, started as
// internal/testenv's EtcdCluster does for the fault tests: Debian's etcd
// 3.4, loopback ports, its own data directory kept across restarts.
type etcdMember struct {
	name      string
	clientURL string
	args      []string
	child
}

// startEtcdCluster starts an n-member cluster of bin with data under dir and
// waits until it has a leader.
func startEtcdCluster(ctx context.Context, bin, dir string, n int) ([]*etcdMember, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	specs := make([]etcdproc.Member, n)
	for i := range specs {
		name := fmt.Sprintf("m%d", i)
		specs[i] = etcdproc.Member{
			Name:      name,
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Dir:       filepath.Join(dir, "etcd-"+name),
		}
	}
	token := fmt.Sprintf("netsel-soak-%d", os.Getpid())
	var members []*etcdMember
	for _, spec := range specs {
		members = append(members, &etcdMember{
			name:      spec.Name,
			clientURL: spec.ClientURL,
			args:      etcdproc.Args(spec, specs, token),
			child:     child{logPath: filepath.Join(dir, "etcd-"+spec.Name+".log")},
		})
	}
	for _, m := range members {
		if err := m.start(bin); err != nil {
			killAll(members)
			return nil, err
		}
	}
	for _, m := range members {
		if err := m.waitServing(ctx, 30*time.Second); err != nil {
			killAll(members)
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := waitLeader(wctx, members); err != nil {
		killAll(members)
		return nil, err
	}
	return members, nil
}

func killAll(ms []*etcdMember) {
	for _, m := range ms {
		m.signal(syscall.SIGKILL, 0)
	}
}

// start launches m's process, appending its output to m.logPath.
func (m *etcdMember) start(bin string) error {
	if err := m.launch(bin, m.args, ""); err != nil {
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	}
	return nil
}

// waitServing waits until m answers Status.
func (m *etcdMember) waitServing(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !m.running() {
			return fmt.Errorf("etcd member %s exited (%v); see %s", m.name, m.exitState(), m.logPath)
		}
		_, err := etcdproc.Status(ctx, m.clientURL, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd member %s not serving on %s: %w", m.name, m.clientURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader returns the member that the running members report as leader.
func leader(ctx context.Context, ms []*etcdMember) (*etcdMember, error) {
	u, err := etcdproc.Leader(ctx, runningURLs(ms), nil)
	if err != nil {
		return nil, err
	}
	return memberAt(ms, u), nil
}

// waitLeader polls leader until one leads or ctx ends.
func waitLeader(ctx context.Context, ms []*etcdMember) (*etcdMember, error) {
	u, err := etcdproc.WaitLeader(ctx, func() []string { return runningURLs(ms) }, nil)
	if err != nil {
		return nil, err
	}
	return memberAt(ms, u), nil
}

// runningURLs returns the client URLs of the running members of ms.
func runningURLs(ms []*etcdMember) []string {
	var urls []string
	for _, m := range ms {
		if m.running() {
			urls = append(urls, m.clientURL)
		}
	}
	return urls
}

// memberAt returns the member of ms whose client URL is url.
func memberAt(ms []*etcdMember, url string) *etcdMember {
	for _, m := range ms {
		if m.clientURL == url {
			return m
		}
	}
	return nil
}

// freePorts returns n distinct loopback ports free for TCP and UDP a moment
// ago (UDP matters for the DNS port).
func freePorts(n int) ([]int, error) {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var ports []int
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		closers = append(closers, ln.Close)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, pc.Close)
		ports = append(ports, port)
	}
	return ports, nil
}
