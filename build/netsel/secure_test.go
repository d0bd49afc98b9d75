package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// startSecureStack is startStack secured as docs/security.md sets it up:
// the embedded etcd serves TLS and requires client certificates, the
// registrar serves HTTPS and authorizes writes with tokenFile.
func startSecureStack(t *testing.T, certs *testenv.Certs, tokenFile string) serveFlags {
	t.Helper()
	f := stackFlags(t, "127.79.0.0/16")
	f.etcdTLSCert, f.etcdTLSKey, f.etcdTLSCA = certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile
	f.tlsCert, f.tlsKey = certs.ServerCertFile, certs.ServerKeyFile
	f.tokenFile = tokenFile
	logs := runTestStack(t, f)
	if !strings.Contains(logs.String(), "registrar=https://") {
		t.Errorf("the ready line does not show an HTTPS registrar:\n%s", logs.String())
	}
	return f
}

// TestSecuredStack runs the secured set-up end to end: a service registers
// over HTTPS with a scoped token and is then answered by DNS and reached
// through the HTTP and VIP proxies, all of which read etcd over mutual TLS;
// writes without a valid token, plain HTTP, and etcd clients without a
// certificate are refused; SIGHUP reloads the token file.
func TestSecuredStack(t *testing.T) {
	certs := testenv.NewCerts(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, tokens, "svc-token-0123456789 actions=register services=echo,echo-*\nops-token-0123456789 actions=admin\n")
	f := startSecureStack(t, certs, tokens)
	base := "https://" + f.registrar
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	backend := testenv.StartBackend(t, "hello from echo")
	p := int(backend.Addr.Port())
	svc, err := client.New(client.Config{URLs: []string{base}, CAFile: certs.CAFile, Token: "svc-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := svc.Register(ctx, client.Registration{Service: "echo", ID: "e1", Address: "127.0.0.1", Port: p, TTL: 30 * time.Second})
	if err != nil {
		t.Fatalf("register over HTTPS with a token: %v", err)
	}

	// DNS answers the VIP.
	testenv.Eventually(t, 10*time.Second, func() bool {
		m := new(dns.Msg)
		m.SetQuestion("echo.netsel.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).ExchangeContext(ctx, m, f.dns)
		if err != nil || len(r.Answer) != 1 {
			return false
		}
		rr, ok := r.Answer[0].(*dns.A)
		return ok && rr.A.String() == a.VIP.String()
	}, "DNS does not answer echo.netsel. with %v", a.VIP)

	// The HTTP proxy and the VIP listener reach the instance.
	get := func(url, host string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return string(b), err
	}
	var last error
	testenv.Eventually(t, 10*time.Second, func() bool {
		body, err := get("http://"+f.http+"/", "echo.netsel")
		last = err
		return body == "hello from echo"
	}, "HTTP proxy does not reach echo: %v", &last)
	vipURL := fmt.Sprintf("http://%s/", net.JoinHostPort(a.VIP.String(), strconv.Itoa(a.Port)))
	testenv.Eventually(t, 10*time.Second, func() bool {
		body, err := get(vipURL, "")
		last = err
		return body == "hello from echo"
	}, "VIP proxy %s does not reach echo: %v", vipURL, &last)

	// Refused: no token, a token outside its scope, plain HTTP.
	anon, err := client.New(client.Config{URLs: []string{base}, CAFile: certs.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	reg := client.Registration{Service: "echo", ID: "intruder", Address: "127.0.0.1", Port: p}
	wantStatus(t, "register without a token", anonRegister(ctx, anon, reg), http.StatusUnauthorized)
	wantStatus(t, "delete-service with a register token", svc.DeleteService(ctx, "echo"), http.StatusForbidden)
	reg.Service = "billing"
	wantStatus(t, "register outside the token's services", anonRegister(ctx, svc, reg), http.StatusForbidden)
	if _, err := get("http://"+f.registrar+"/v1/services", ""); err == nil {
		t.Error("plain HTTP to the registrar answered 200")
	}
	if v, err := anon.Service(ctx, "echo"); err != nil || len(v.Instances) != 1 {
		t.Errorf("read (open) after refused writes: %+v %v, want the one instance", v, err)
	}

	// etcd refuses plain HTTP and clients without a certificate.
	if _, err := get("http://"+f.etcdListen+"/version", ""); err == nil {
		t.Error("embedded etcd answered plain HTTP")
	}
	noCert := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}}
	if resp, err := noCert.Get("https://" + f.etcdListen + "/version"); err == nil {
		resp.Body.Close()
		t.Errorf("embedded etcd answered a client without a certificate: %s", resp.Status)
	}

	// SIGHUP reloads the token file: a new token works, a removed one stops.
	writeTokens(t, tokens, "new-token-0123456789 actions=register services=echo\nops-token-0123456789 actions=admin\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fresh, _ := client.New(client.Config{URLs: []string{base}, CAFile: certs.CAFile, Token: "new-token-0123456789"})
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := fresh.Register(ctx, client.Registration{Service: "echo", ID: "e2", Address: "127.0.0.1", Port: p})
		return err == nil
	}, "the token added to the file does not work after SIGHUP")
	wantStatus(t, "heartbeat with the token removed on SIGHUP", svc.Heartbeat(ctx, "echo", "e1"), http.StatusUnauthorized)
}

func anonRegister(ctx context.Context, c *client.Client, reg client.Registration) error {
	_, err := c.Register(ctx, reg)
	return err
}

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status {
		t.Errorf("%s: %v, want %d", what, err, status)
	}
}

func writeTokens(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeTLSFlagErrors: TLS flags that do not go together are refused
// before anything starts.
func TestServeTLSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-client-ca", "ca.pem"}, "-tls-client-ca needs -tls-cert"},
		{[]string{"-auth-reads"}, "-auth-reads needs -token-file"},
		{[]string{"-etcd-tls-cert", "c.pem", "-etcd-tls-key", "k.pem"}, "needs -etcd-tls-ca (or -etcd-ca)"},
		{[]string{"-etcd-tls-ca", "ca.pem"}, "-etcd-tls-ca needs -etcd-tls-cert"},
		{[]string{"-etcd", "https://127.0.0.1:2379", "-etcd-tls-ca", "ca.pem"}, "for an external etcd"},
		{[]string{"-etcd-cert", "c.pem"}, "-etcd-cert and -etcd-key go together"},
	} {
		var stderr strings.Builder
		args := append([]string{"serve", "-data-dir", t.TempDir()}, tc.args...)
		if code := run(context.Background(), args, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("netsel %v: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
