package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/netsel/netsel/internal/stack"
)

// checkTLS checks the TLS flags of f go together and makes their paths
// absolute, since CoreDNS and Caddy resolve relative ones their own way.
func (f *serveFlags) checkTLS() error {
	pairs := []struct {
		cert, key   *string
		certN, keyN string
	}{
		{&f.tlsCert, &f.tlsKey, "-tls-cert", "-tls-key"},
		{&f.etcdTLSCert, &f.etcdTLSKey, "-etcd-tls-cert", "-etcd-tls-key"},
		{&f.etcdCert, &f.etcdKey, "-etcd-cert", "-etcd-key"},
	}
	for _, p := range pairs {
		if (*p.cert == "") != (*p.key == "") {
			return fmt.Errorf("%s and %s go together", p.certN, p.keyN)
		}
	}
	switch {
	case f.tlsClientCA != "" && f.tlsCert == "":
		return errors.New("-tls-client-ca needs -tls-cert and -tls-key")
	case f.authReads && f.tokenFile == "":
		return errors.New("-auth-reads needs -token-file")
	case f.etcd != "" && (f.etcdTLSCert != "" || f.etcdTLSCA != ""):
		return errors.New("-etcd-tls-* configure the embedded etcd; for an external etcd (-etcd) use -etcd-cert, -etcd-key and -etcd-ca")
	case f.etcdTLSCA != "" && f.etcdTLSCert == "":
		return errors.New("-etcd-tls-ca needs -etcd-tls-cert and -etcd-tls-key")
	case f.etcdTLSCert != "" && f.etcdTLSCA == "" && f.etcdCA == "":
		return errors.New("-etcd-tls-cert needs -etcd-tls-ca (or -etcd-ca): the CA the runner's parts verify the embedded etcd with")
	}
	for _, p := range []*string{&f.tlsCert, &f.tlsKey, &f.tlsClientCA, &f.etcdTLSCert, &f.etcdTLSKey, &f.etcdTLSCA, &f.etcdCert, &f.etcdKey, &f.etcdCA, &f.tokenFile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("%s: %w", *p, err)
		}
		*p = abs
	}
	return nil
}

// embeddedEtcdClientTLS sets how the runner's parts (its own client, the
// registrar, CoreDNS and Caddy) reach an embedded etcd serving TLS: they
// trust -etcd-ca, else -etcd-tls-ca; when the embedded etcd requires client
// certificates they present -etcd-cert, else the server's own certificate
// (which then needs the clientAuth extended key usage as well).
func (f *serveFlags) embeddedEtcdClientTLS(e *stack.Etcd) {
	if e.CAFile == "" {
		e.CAFile = f.etcdTLSCA
	}
	if f.etcdTLSCA != "" && e.CertFile == "" {
		e.CertFile, e.KeyFile = f.etcdTLSCert, f.etcdTLSKey
	}
}

// registrarURL is the base URL the registrar serves.
func (f *serveFlags) registrarURL() string {
	if f.tlsCert != "" {
		return "https://" + f.registrar
	}
	return "http://" + f.registrar
}
