// Package etcdproc describes loopback clusters of separate etcd server
// processes (Debian's etcd 3.4), as the fault tests (internal/testenv) and
// the soak (build/bench/soak) run them: the members' command lines, and
// asking them for their status and leader.
package etcdproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Member is one etcd server of a cluster.
type Member struct {
	Name      string
	ClientURL string // where clients reach it, e.g. http://127.0.0.1:40123
	PeerURL   string // where the other members reach it
	Dir       string // its data directory
}

// Args returns the etcd command line of m as a member of a new cluster of
// members, told apart from other clusters by token: fast elections (100 ms
// heartbeats, 1 s election timeout, pre-vote) and warning-level logs on
// stderr.
func Args(m Member, members []Member, token string) []string {
	initial := make([]string, len(members))
	for i, o := range members {
		initial[i] = o.Name + "=" + o.PeerURL
	}
	return []string{
		"--name", m.Name,
		"--data-dir", m.Dir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
		"--heartbeat-interval", "100",
		"--election-timeout", "1000",
		"--pre-vote",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
}

// Dialer connects to a member's host:port, e.g. from inside a network
// namespace; nil dials from this process's own network.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Status asks the server at url alone for its status, within a second,
// dialling it with dial.
func Status(ctx context.Context, url string, dial Dialer) (*clientv3.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cfg := clientv3.Config{Endpoints: []string{url}, DialTimeout: time.Second, Logger: zap.NewNop()}
	if dial != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(dial)}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return cli.Status(ctx, url)
}

// Leader asks the servers at urls for their status, dialling them with
// dial, and returns the URL of the one that reports itself the leader.
func Leader(ctx context.Context, urls []string, dial Dialer) (string, error) {
	var errs []error
	for _, u := range urls {
		st, err := Status(ctx, u, dial)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		case st.Leader == 0:
			errs = append(errs, fmt.Errorf("%s: no leader", u))
		case st.Leader == st.Header.MemberId:
			return u, nil
		}
	}
	return "", fmt.Errorf("none of %d running members is the leader: %w", len(urls), errors.Join(errs...))
}

// WaitLeader polls Leader over the URLs urls returns (those of the running
// members) until one leads or ctx ends.
func WaitLeader(ctx context.Context, urls func() []string, dial Dialer) (string, error) {
	for {
		u, err := Leader(ctx, urls(), dial)
		if err == nil {
			return u, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for a leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
