package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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
	var members []*etcdMember
	var initial []string
	for i := range n {
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peer))
	}
	for i := range n {
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			child:     child{logPath: filepath.Join(dir, fmt.Sprintf("etcd-m%d.log", i))},
		}
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m.args = []string{
			"--name", m.name,
			"--data-dir", filepath.Join(dir, "etcd-"+m.name),
			"--listen-client-urls", m.clientURL,
			"--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", fmt.Sprintf("netsel-soak-%d", os.Getpid()),
			"--heartbeat-interval", "100",
			"--election-timeout", "1000",
			"--pre-vote",
			"--logger", "zap",
			"--log-outputs", "stderr",
			"--log-level", "warn",
		}
		members = append(members, m)
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

// status asks m alone for its status.
func (m *etcdMember) status(ctx context.Context) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.clientURL}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx, m.clientURL)
}

// waitServing waits until m answers Status.
func (m *etcdMember) waitServing(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !m.running() {
			return fmt.Errorf("etcd member %s exited (%v); see %s", m.name, m.exitState(), m.logPath)
		}
		_, err := m.status(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("etcd member %s not serving on %s: %w", m.name, m.clientURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leader returns the member that running members report as leader.
func leader(ctx context.Context, ms []*etcdMember) (*etcdMember, error) {
	var errs []error
	for _, m := range ms {
		if !m.running() {
			continue
		}
		st, err := m.status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.name, err))
			continue
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberId {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no running member leads: %w", errors.Join(errs...))
}

// waitLeader polls leader until one leads or ctx ends.
func waitLeader(ctx context.Context, ms []*etcdMember) (*etcdMember, error) {
	for {
		m, err := leader(ctx, ms)
		if err == nil {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for an etcd leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
