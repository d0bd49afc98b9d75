package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// etcdTLS returns the TLS configuration for etcd clients, or nil when no
// TLS flag is set.
func etcdTLS(c stackConfig) (*tls.Config, error) {
	if c.EtcdCertFile == "" && c.EtcdKeyFile == "" && c.EtcdCAFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.EtcdCertFile != "" || c.EtcdKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.EtcdCertFile, c.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.EtcdCAFile != "" {
		pem, err := os.ReadFile(c.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no certificates found", c.EtcdCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
