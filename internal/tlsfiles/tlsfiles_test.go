package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/internal/tlsfiles"
)

func TestCertPool(t *testing.T) {
	certs := testenv.NewCerts(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		file    string
		wantErr string
	}{
		{"a CA", certs.CAFile, ""},
		{"missing", filepath.Join(dir, "nope.pem"), "no such file"},
		{"empty", write("empty.pem", ""), "holds no PEM certificate"},
		{"not PEM", write("junk.pem", "not a certificate\n"), "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := tlsfiles.CertPool(tt.file)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CertPool(%s): %v", tt.file, err)
				}
				// The pool must trust what the CA signed.
				pair, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(pair.Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
					t.Fatalf("the pool does not verify the CA's server certificate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CertPool(%s) error %v, want one containing %q", tt.file, err, tt.wantErr)
			}
		})
	}
}
