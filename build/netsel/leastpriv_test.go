package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// The etcd users and roles of docs/security.md ("Least privilege").
const (
	registrarUser, registrarPassword = "netsel-registrar", "registrar-secret"
	readerUser, readerPassword       = "netsel-reader", "reader-secret"
	rootPassword                     = "root-secret"
)

// leastPrivilegePKI is the two CAs of docs/security.md: one for etcd and
// its clients, one for the registrar and its clients.
type leastPrivilegePKI struct {
	etcd, registrar *testenv.Certs
	// registrarEtcdCert, registrarEtcdKey: the etcd client certificate of
	// the runner (CN netsel-registrar), signed by the etcd CA.
	registrarEtcdCert, registrarEtcdKey string
	// readerEtcdCert, readerEtcdKey: an etcd client certificate for a
	// reader on another host (CN netsel-reader).
	readerEtcdCert, readerEtcdKey string
}

func newLeastPrivilegePKI(t *testing.T) *leastPrivilegePKI {
	p := &leastPrivilegePKI{etcd: testenv.NewCerts(t), registrar: testenv.NewCerts(t)}
	issue := func(cn string) (string, string) {
		return p.etcd.Issue(t, cn, &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
	}
	p.registrarEtcdCert, p.registrarEtcdKey = issue(registrarUser)
	p.readerEtcdCert, p.readerEtcdKey = issue(readerUser)
	return p
}

// etcdClient returns a client of the etcd at endpoint that trusts the etcd
// CA and presents certFile (with user and password when user is set).
func etcdClient(t *testing.T, endpoint string, ca *x509.CertPool, certFile, keyFile, user, password string) (*clientv3.Client, error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 3 * time.Second,
		TLS:         &tls.Config{RootCAs: ca, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Username:    user,
		Password:    password,
		Logger:      zap.NewNop(),
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// setUpEtcdRoles does through the etcd client API what docs/security.md's
// etcdctl commands do, as root would before authentication is on.
func setUpEtcdRoles(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	end := clientv3.GetPrefixRangeEnd(prefix)
	// Readers report what they serve beside the keyspace (catalog.Reader).
	readers := catalog.MustKeyspace(prefix).ReadersPrefix()
	readersEnd := clientv3.GetPrefixRangeEnd(readers)
	for _, step := range []struct {
		etcdctl string
		do      func() error
	}{
		{"user add root", func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err }},
		{"user grant-role root root", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"role add netsel-registrar", func() error { _, err := cli.RoleAdd(ctx, "netsel-registrar"); return err }},
		{"role grant-permission --prefix netsel-registrar readwrite " + prefix, func() error {
			_, err := cli.RoleGrantPermission(ctx, "netsel-registrar", prefix, end, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"role grant-permission --prefix netsel-registrar read " + readers, func() error {
			_, err := cli.RoleGrantPermission(ctx, "netsel-registrar", readers, readersEnd, clientv3.PermissionType(clientv3.PermRead))
			return err
		}},
		{"role add netsel-reader", func() error { _, err := cli.RoleAdd(ctx, "netsel-reader"); return err }},
		{"role grant-permission --prefix netsel-reader read " + prefix, func() error {
			_, err := cli.RoleGrantPermission(ctx, "netsel-reader", prefix, end, clientv3.PermissionType(clientv3.PermRead))
			return err
		}},
		{"role grant-permission --prefix netsel-reader readwrite " + readers, func() error {
			_, err := cli.RoleGrantPermission(ctx, "netsel-reader", readers, readersEnd, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"user add netsel-registrar", func() error { _, err := cli.UserAdd(ctx, registrarUser, registrarPassword); return err }},
		{"user grant-role netsel-registrar netsel-registrar", func() error {
			_, err := cli.UserGrantRole(ctx, registrarUser, "netsel-registrar")
			return err
		}},
		{"user add netsel-reader", func() error { _, err := cli.UserAdd(ctx, readerUser, readerPassword); return err }},
		{"user grant-role netsel-reader netsel-reader", func() error { _, err := cli.UserGrantRole(ctx, readerUser, "netsel-reader"); return err }},
		{"auth enable", func() error { _, err := cli.AuthEnable(ctx); return err }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("etcdctl %s: %v", step.etcdctl, err)
		}
	}
}

// TestLeastPrivilege runs docs/security.md's least-privilege set-up: etcd
// and the registrar have separate CAs, and etcd authentication gives the
// registrar a read-write role on the prefix and the readers (DNS, the
// proxies) a read-only one. The runner, pointed at that etcd with
// -etcd-reader-user, registers, resolves and proxies; then, playing a
// client holding each credential: a reader cannot write, the registrar
// cannot step outside the prefix, an etcd certificate that names no user
// reads nothing, and a certificate of the registrar's CA does not even get
// through etcd's TLS handshake. etcd is the embedded one (the etcd the
// runner links).
func TestLeastPrivilege(t *testing.T) {
	pki := newLeastPrivilegePKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{
		Dir:       t.TempDir(),
		ClientURL: "https://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
		CertFile:  pki.etcd.ServerCertFile, KeyFile: pki.etcd.ServerKeyFile,
		TrustedCAFile: pki.etcd.CAFile,
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	checkLeastPrivilege(t, pki, srv.ClientURL())
}

// TestLeastPrivilegeEtcdProcess is TestLeastPrivilege against Debian's etcd
// (3.4) as a separate process, as an external etcd is run.
func TestLeastPrivilegeEtcdProcess(t *testing.T) {
	pki := newLeastPrivilegePKI(t)
	endpoint := testenv.StartEtcdProcessTLS(t, pki.etcd.ServerCertFile, pki.etcd.ServerKeyFile, pki.etcd.CAFile, pki.etcd.ClientTLS(t))
	checkLeastPrivilege(t, pki, endpoint)
}

// checkLeastPrivilege sets up the etcd at endpoint (serving the etcd CA's
// server certificate and requiring client certificates of that CA) as
// docs/security.md does, runs the runner on it and plays each credential.
func checkLeastPrivilege(t *testing.T, pki *leastPrivilegePKI, endpoint string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admin, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.etcd.ClientCertFile, pki.etcd.ClientKeyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	setUpEtcdRoles(t, admin, "/netsel/")

	// The runner as docs/security.md runs it: the registrar is
	// netsel-registrar by its certificate's CN, DNS and the proxies log in
	// as netsel-reader; the registrar serves HTTPS and requires client
	// certificates of its own CA.
	t.Setenv("NETSEL_ETCD_READER_PASSWORD", readerPassword)
	f := stackFlags(t, "127.79.0.0/16")
	f.etcd = endpoint
	f.etcdCA, f.etcdCert, f.etcdKey = pki.etcd.CAFile, pki.registrarEtcdCert, pki.registrarEtcdKey
	f.etcdReaderUser = readerUser
	f.tlsCert, f.tlsKey, f.tlsClientCA = pki.registrar.ServerCertFile, pki.registrar.ServerKeyFile, pki.registrar.CAFile
	runTestStack(t, f)

	backend := testenv.StartBackend(t, "hello from web")
	c, err := client.New(client.Config{URLs: []string{"https://" + f.registrar}, CAFile: pki.registrar.CAFile,
		CertFile: pki.registrar.ClientCertFile, KeyFile: pki.registrar.ClientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Register(ctx, client.Registration{Service: "web", ID: "w1", Address: "127.0.0.1", Port: int(backend.Addr.Port())})
	if err != nil {
		t.Fatalf("register as netsel-registrar: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		m := new(dns.Msg)
		m.SetQuestion("web.netsel.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).ExchangeContext(ctx, m, f.dns)
		return err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == a.VIP.String()
	}, "DNS, reading etcd as netsel-reader, does not answer web.netsel. with %v", a.VIP)
	var last error
	testenv.Eventually(t, 10*time.Second, func() bool {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+f.http+"/", nil)
		req.Host = "web.netsel"
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			last = err
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = fmt.Errorf("%s: %s", resp.Status, b)
		return string(b) == "hello from web"
	}, "the HTTP proxy, reading etcd as netsel-reader, does not reach web: %v", &last)

	isDenied := func(err error) bool { return errors.Is(err, rpctypes.ErrPermissionDenied) }
	key := "/netsel/instances/web/w1"

	// The readers report what they serve (a drain waits on it), and the
	// registrar reads their reports.
	registrarEtcd, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.registrarEtcdCert, pki.registrarEtcdKey, "", "")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		resp, err := registrarEtcd.Get(ctx, "/netsel.readers/", clientv3.WithPrefix())
		return err == nil && resp.Count == 2
	}, "the DNS server and the proxy, writing as netsel-reader, keep no reader keys the registrar can read")

	// A reader, as the runner's readers log in: it reads the prefix and
	// writes nothing, not even with the registrar's certificate.
	reader, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.registrarEtcdCert, pki.registrarEtcdKey, readerUser, readerPassword)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := reader.Get(ctx, "/netsel/", clientv3.WithPrefix()); err != nil || resp.Count == 0 {
		t.Errorf("netsel-reader reads the prefix: %v, %v; want the registration's keys", resp, err)
	}
	if _, err := reader.Put(ctx, "/netsel/instances/billing/x", `{"address":"127.0.0.1","port":1}`); !isDenied(err) {
		t.Errorf("netsel-reader writes an instance: %v, want permission denied", err)
	}
	if _, err := reader.Delete(ctx, key); !isDenied(err) {
		t.Errorf("netsel-reader deletes an instance: %v, want permission denied", err)
	}
	// A reader on another host, known by its certificate (CN
	// netsel-reader) alone.
	readerByCert, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.readerEtcdCert, pki.readerEtcdKey, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readerByCert.Get(ctx, key); err != nil {
		t.Errorf("netsel-reader by certificate reads: %v", err)
	}
	if _, err := readerByCert.Put(ctx, key, "x"); !isDenied(err) {
		t.Errorf("netsel-reader by certificate writes: %v, want permission denied", err)
	}

	// The registrar, by certificate or by password, writes the prefix and
	// nothing else.
	for _, password := range []string{"", registrarPassword} {
		user := ""
		if password != "" {
			user = registrarUser
		}
		reg, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.registrarEtcdCert, pki.registrarEtcdKey, user, password)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Put(ctx, "/netsel/probe", "x"); err != nil {
			t.Errorf("netsel-registrar (password %q) writes in the prefix: %v", password, err)
		}
		for _, k := range []string{"/other/key", "/netsel", "/netsel0/x", "/"} {
			if _, err := reg.Put(ctx, k, "x"); !isDenied(err) {
				t.Errorf("netsel-registrar (password %q) writes %q outside the prefix: %v, want permission denied", password, k, err)
			}
		}
		if _, err := reg.Get(ctx, "", clientv3.WithPrefix()); !isDenied(err) {
			t.Errorf("netsel-registrar (password %q) reads the whole keyspace: %v, want permission denied", password, err)
		}
		if _, err := reg.UserAdd(ctx, "intruder", "pw"); !isDenied(err) {
			t.Errorf("netsel-registrar (password %q) adds a user: %v, want permission denied", password, err)
		}
	}

	// An etcd-CA certificate whose CN is no user, and no password: nothing.
	nobody, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.etcd.ServerCertFile, pki.etcd.ServerKeyFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nobody.Get(ctx, key); err == nil {
		t.Error("a certificate naming no etcd user reads an instance")
	}

	// The registrar's CA grants nothing at etcd: its client certificate
	// fails the TLS handshake, with or without the registrar's password.
	u, _ := url.Parse(endpoint)
	regCert, err := tls.LoadX509KeyPair(pki.registrar.ClientCertFile, pki.registrar.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pki.etcd.Pool, Certificates: []tls.Certificate{regCert}, MinVersion: tls.VersionTLS12})
	if err == nil {
		// With TLS 1.3 the server's verdict on the client's certificate
		// comes after the client's side of the handshake.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "tls: ") {
		t.Errorf("a registrar-CA client certificate at etcd: %v, want a TLS handshake failure", err)
	}
	shortCtx, shortCancel := context.WithTimeout(ctx, 3*time.Second)
	defer shortCancel()
	if intruder, err := etcdClient(t, endpoint, pki.etcd.Pool, pki.registrar.ClientCertFile, pki.registrar.ClientKeyFile, registrarUser, registrarPassword); err == nil {
		if _, err := intruder.Get(shortCtx, key); err == nil {
			t.Error("a registrar-CA client certificate with the registrar's password reads etcd")
		}
	}
	// And the other way round: etcd's CA grants nothing at the registrar.
	etcdSide, err := client.New(client.Config{URLs: []string{"https://" + f.registrar}, CAFile: pki.registrar.CAFile,
		CertFile: pki.registrarEtcdCert, KeyFile: pki.registrarEtcdKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcdSide.Services(shortCtx); err == nil {
		t.Error("the registrar accepts a client certificate of the etcd CA")
	}

	// The readers really log in as -etcd-reader-user: with a wrong reader
	// password the runner does not start, though the registrar's
	// certificate alone would let them read.
	t.Setenv("NETSEL_ETCD_READER_PASSWORD", "wrong")
	bad := stackFlags(t, "127.79.0.0/16")
	bad.etcd, bad.etcdCA, bad.etcdCert, bad.etcdKey, bad.etcdReaderUser = f.etcd, f.etcdCA, f.etcdCert, f.etcdKey, f.etcdReaderUser
	bad.vipProxy = false
	var logs testenv.SyncBuffer
	// A runner that starts runs until this ends.
	badCtx, badCancel := context.WithTimeout(ctx, 20*time.Second)
	defer badCancel()
	if err := runStack(badCtx, bad, slog.New(slog.NewTextHandler(&logs, nil))); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("runner with a wrong reader password: %v, want it refused at start (authentication failed)", err)
	}
}
