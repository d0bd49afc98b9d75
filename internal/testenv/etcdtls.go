//go:build linux

package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/netsel/netsel/internal/childproc"
	"github.com/netsel/netsel/internal/etcdproc"
)

// StartEtcdProcessTLS starts a one-member etcd of EtcdBinary on free
// loopback ports, serving its clients over HTTPS with certFile and keyFile
// and requiring client certificates signed by clientCAFile
// (--client-cert-auth), as docs/security.md runs an external etcd. It
// waits until etcd answers a client configured by clientTLS (which trusts
// etcd's CA and presents a certificate clientCAFile signed), kills etcd when
// the test ends, and returns its client URL. It skips the test when the
// binary is missing.
func StartEtcdProcessTLS(t testing.TB, certFile, keyFile, clientCAFile string, clientTLS *tls.Config) string {
	t.Helper()
	if _, err := os.Stat(EtcdBinary); err != nil {
		t.Skipf("%s not found (install Debian's etcd-server package to run this test): %v", EtcdBinary, err)
	}
	ports := freePorts(t, 2)
	m := etcdproc.Member{
		Name:      "m0",
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Dir:       filepath.Join(t.TempDir(), "etcd"),
	}
	args := append(etcdproc.Args(m, []etcdproc.Member{m}, fmt.Sprintf("netsel-tls-%d-%d", os.Getpid(), ports[0])),
		"--cert-file", certFile, "--key-file", keyFile,
		"--client-cert-auth", "--trusted-ca-file", clientCAFile)
	log := &tailBuffer{max: 64 << 10}
	proc, err := childproc.Start(EtcdBinary, args, log)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		proc.Stop(syscall.SIGKILL, 0)
		if t.Failed() {
			t.Logf("etcd (%s) log, last lines:\n%s", m.ClientURL, log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-proc.Exited():
			t.Fatalf("etcd exited at start (%v); log:\n%s", proc.State(), log.String())
		default:
		}
		err := tlsStatus(m.ClientURL, clientTLS)
		if err == nil {
			return m.ClientURL
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not answering on %s after 20s: %v; log:\n%s", m.ClientURL, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tlsStatus asks the etcd at url for its status over TLS, within a second.
func tlsStatus(url string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: time.Second, TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	_, err = cli.Status(ctx, url)
	return err
}
