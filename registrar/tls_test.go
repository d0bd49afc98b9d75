package registrar_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/client"
)

// startTLSRegistrar runs a registrar serving HTTPS with certs' server
// certificate, requiring client certificates when mtls is set.
func startTLSRegistrar(t *testing.T, certs *testenv.Certs, mtls bool, opts ...testenv.RegistrarOption) (*testenv.Registrar, string) {
	t.Helper()
	etcd := testenv.StartEtcd(t)
	opts = append([]testenv.RegistrarOption{func(c *registrar.Config) {
		c.TLSCertFile, c.TLSKeyFile = certs.ServerCertFile, certs.ServerKeyFile
		if mtls {
			c.TLSClientCAFile = certs.CAFile
		}
	}}, opts...)
	reg := testenv.StartRegistrar(t, etcd.URL, opts...)
	return reg, "https://" + reg.Addr
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c
}

// TestHTTPS: the registrar serves HTTPS; the Go client verifies its
// certificate against the CA it is given and refuses one it cannot verify.
func TestHTTPS(t *testing.T) {
	certs := testenv.NewCerts(t)
	other := testenv.NewCerts(t)
	_, url := startTLSRegistrar(t, certs, false, func(c *registrar.Config) {
		c.TokenFile = tokenFile(t, "svc-token-0123456789 actions=register services=web\n")
	})
	ctx := t.Context()

	good := newClient(t, client.Config{URLs: []string{url}, CAFile: certs.CAFile, Token: "svc-token-0123456789"})
	a, err := good.Register(ctx, client.Registration{Service: "web", ID: "a", Address: "127.0.0.1", Port: 80})
	if err != nil {
		t.Fatalf("register over HTTPS: %v", err)
	}
	if !a.VIP.IsValid() {
		t.Errorf("assignment %+v has no VIP", a)
	}
	if _, err := good.Services(ctx); err != nil {
		t.Errorf("list over HTTPS: %v", err)
	}
	// The same with a tls.Config instead of a file.
	viaTLS := newClient(t, client.Config{URLs: []string{url}, TLS: &tls.Config{RootCAs: certs.Pool}})
	if _, err := viaTLS.Services(ctx); err != nil {
		t.Errorf("list with Config.TLS: %v", err)
	}

	for _, tc := range []struct {
		name string
		cfg  client.Config
	}{
		{"system roots", client.Config{URLs: []string{url}}},
		{"another CA", client.Config{URLs: []string{url}, CAFile: other.CAFile}},
		{"name mismatch", client.Config{URLs: []string{url}, TLS: &tls.Config{RootCAs: certs.Pool, ServerName: "registrar.example"}}},
	} {
		_, err := newClient(t, tc.cfg).Services(ctx)
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) {
			t.Errorf("%s: %v, want a certificate verification error", tc.name, err)
		}
	}
	// Plain HTTP to the HTTPS port is not served.
	if _, err := newClient(t, client.Config{URLs: []string{"http" + strings.TrimPrefix(url, "https")}}).Services(ctx); err == nil {
		t.Error("plain HTTP to the HTTPS registrar succeeded")
	}
	// The token is still required over TLS.
	_, err = newClient(t, client.Config{URLs: []string{url}, CAFile: certs.CAFile}).Register(ctx,
		client.Registration{Service: "web", Address: "127.0.0.1", Port: 80})
	if ae := (*client.APIError)(nil); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("register without a token over HTTPS: %v, want 401", err)
	}
}

// TestMutualTLS: with a client CA, the registrar accepts only clients
// presenting a certificate that CA signed.
func TestMutualTLS(t *testing.T) {
	certs := testenv.NewCerts(t)
	other := testenv.NewCerts(t)
	_, url := startTLSRegistrar(t, certs, true)
	ctx := t.Context()

	ok := newClient(t, client.Config{URLs: []string{url}, CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile})
	if _, err := ok.Register(ctx, client.Registration{Service: "web", Address: "127.0.0.1", Port: 80}); err != nil {
		t.Fatalf("register with a client certificate: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  client.Config
	}{
		{"no client certificate", client.Config{URLs: []string{url}, CAFile: certs.CAFile}},
		{"certificate of another CA", client.Config{URLs: []string{url}, CAFile: certs.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile}},
	} {
		// The handshake fails; with TLS 1.3 the client may see it as a TLS
		// alert or as the connection closed under its request.
		_, err := newClient(t, tc.cfg).Services(ctx)
		var ae *client.APIError
		if err == nil || errors.As(err, &ae) {
			t.Errorf("%s: %v, want the connection refused", tc.name, err)
		}
	}
}

// TestReloadTLS: ReloadTLS puts a new certificate in force for new
// connections; a bad one keeps the old.
func TestReloadTLS(t *testing.T) {
	certs := testenv.NewCerts(t)
	reg, url := startTLSRegistrar(t, certs, false)
	ctx := t.Context()
	services := func(ca string) error {
		c := newClient(t, client.Config{URLs: []string{url}, CAFile: ca})
		_, err := c.Services(ctx)
		return err
	}
	if err := services(certs.CAFile); err != nil {
		t.Fatal(err)
	}
	// Rotate: a certificate from a new CA written over the same files.
	next := testenv.NewCerts(t)
	copyFile(t, next.ServerCertFile, certs.ServerCertFile)
	copyFile(t, next.ServerKeyFile, certs.ServerKeyFile)
	if err := reg.Registrar.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if err := services(next.CAFile); err != nil {
		t.Errorf("after rotation, the new CA: %v", err)
	}
	var uae x509.UnknownAuthorityError
	if err := services(certs.CAFile); !errors.As(err, &uae) {
		t.Errorf("after rotation, the old CA: %v, want unknown authority", err)
	}
	// A key that does not match the certificate is refused; the rotated
	// certificate stays.
	copyFile(t, certs.ClientKeyFile, certs.ServerKeyFile)
	if err := reg.Registrar.ReloadTLS(); err == nil {
		t.Error("reload with a mismatched key succeeded")
	}
	if err := reg.Registrar.Reload(); err == nil {
		t.Error("Reload with a mismatched key succeeded")
	}
	if err := services(next.CAFile); err != nil {
		t.Errorf("after a bad reload: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

// TestClientTLSConfigErrors: the client refuses TLS settings it cannot use.
func TestClientTLSConfigErrors(t *testing.T) {
	certs := testenv.NewCerts(t)
	for _, tc := range []struct {
		name string
		cfg  client.Config
		want string
	}{
		{"missing CA", client.Config{CAFile: certs.Dir + "/nope.pem"}, "CA"},
		{"CA not PEM", client.Config{CAFile: tokenFile(t, "x")}, "no PEM certificate"},
		{"cert without key", client.Config{CertFile: certs.ClientCertFile}, "go together"},
		{"key mismatch", client.Config{CertFile: certs.ClientCertFile, KeyFile: certs.ServerKeyFile}, "client certificate"},
		{"TLS and HTTPClient", client.Config{CAFile: certs.CAFile, HTTPClient: &http.Client{Timeout: time.Second}}, "HTTPClient"},
	} {
		tc.cfg.URLs = []string{"https://127.0.0.1:1"}
		if _, err := client.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}
