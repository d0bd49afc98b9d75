package registrar

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/netsel/netsel/internal/tlsfiles"
)

// serverTLS is the registrar's TLS configuration, read from the files of
// Config and swapped whole by reload, so a certificate can be rotated
// without a restart.
type serverTLS struct {
	certFile, keyFile, clientCAFile string
	cur                             atomic.Pointer[tls.Config]
}

// loadServerTLS reads the certificate, key and client CA files of cfg, or
// returns nil when cfg serves plain HTTP.
func loadServerTLS(cfg Config) (*serverTLS, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	s := &serverTLS{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, clientCAFile: cfg.TLSClientCAFile}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads the files again; on an error the configuration in use stays.
func (s *serverTLS) reload() error {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s, key %s: %w", s.certFile, s.keyFile, err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if s.clientCAFile != "" {
		pool, err := tlsfiles.CertPool(s.clientCAFile)
		if err != nil {
			return fmt.Errorf("TLS client CA: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s.cur.Store(c)
	return nil
}

// config returns the tls.Config a server listens with: each handshake uses
// the configuration loaded last.
func (s *serverTLS) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// ReloadTLS reads the certificate, key and client CA files again; new
// connections use them, connections already open keep theirs. When a file
// is unreadable or invalid, it returns the error and the configuration
// loaded before stays in use.
func (r *Registrar) ReloadTLS() error {
	if r.tls == nil {
		return errors.New("registrar: not serving TLS; nothing to reload")
	}
	if err := r.tls.reload(); err != nil {
		return fmt.Errorf("registrar: reload TLS (keeping the certificate loaded before): %w", err)
	}
	r.log.Info("TLS certificate reloaded", "cert", r.tls.certFile, "client_ca", r.tls.clientCAFile)
	return nil
}

// Reload reads the token file and the TLS files again, those that are
// configured; the runner calls it on SIGHUP. What fails to load keeps its
// previous state; the errors are returned joined.
func (r *Registrar) Reload() error {
	var errs []error
	if r.tokens != nil {
		errs = append(errs, r.ReloadTokens())
	}
	if r.tls != nil {
		errs = append(errs, r.ReloadTLS())
	}
	return errors.Join(errs...)
}
