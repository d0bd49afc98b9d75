// Package tlsfiles reads the PEM files NetSel's parts are configured with.
package tlsfiles

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool reads a PEM bundle of CA certificates. A file that holds none is
// an error: trusting nothing would fail every handshake later, far from the
// mistake.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
