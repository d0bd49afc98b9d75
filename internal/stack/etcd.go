package stack

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/logs"
	"github.com/netsel/netsel/internal/tlsfiles"
)

// Etcd is how every part of a stack reaches etcd: the one connection config
// the registrar's client, the DNS plugin and the Caddy app are built from.
type Etcd struct {
	// Endpoints are the client URLs, e.g. http://127.0.0.1:2379. With an
	// embedded etcd, Start sets them.
	Endpoints []string
	// Username and Password authenticate to etcd.
	Username, Password string
	// ReaderUsername and ReaderPassword, when ReaderUsername is set, are
	// the user the readers (DNS and the proxies) log in as in place of
	// Username: a user whose role may only read the keyspace.
	ReaderUsername, ReaderPassword string
	// CertFile and KeyFile are a client certificate; CAFile is the CA
	// bundle etcd's certificate is verified with.
	CertFile, KeyFile, CAFile string
}

// Validate reports settings that do not go together.
func (e Etcd) Validate() error {
	switch {
	case len(e.Endpoints) == 0:
		return errors.New("no etcd endpoint")
	case (e.CertFile == "") != (e.KeyFile == ""):
		return errors.New("etcd client certificate and key go together")
	}
	return nil
}

// reader returns the user and password of the readers.
func (e Etcd) reader() (user, password string) {
	if e.ReaderUsername != "" {
		return e.ReaderUsername, e.ReaderPassword
	}
	return e.Username, e.Password
}

// TLS returns the client TLS configuration, or nil when no TLS is set.
func (e Etcd) TLS() (*tls.Config, error) {
	if e.CertFile == "" && e.KeyFile == "" && e.CAFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CertFile != "" || e.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if e.CAFile != "" {
		pool, err := tlsfiles.CertPool(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Client returns a client of e, as the writer (Username), logging to logger.
func (e Etcd) Client(logger *slog.Logger) (*clientv3.Client, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := e.TLS()
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: 5 * time.Second,
		Username:    e.Username,
		Password:    e.Password,
		TLS:         tlsCfg,
		Logger:      logs.Zap(logger),
		// Notice a member that stopped answering (its host lost or cut
		// off) within seconds, and send to the others: etcd refuses
		// pings more often than every 5s.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", e.Endpoints, err)
	}
	return client, nil
}
