package stack

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/logs"
	"github.com/netsel/netsel/registrar"
)

// startRegistrar starts the registrar on c.Registrar.Addr, reloading its
// token file and TLS certificate on SIGHUP.
func startRegistrar(ctx context.Context, c *Config, etcd *clientv3.Client, lease pb.LeaseClient) (net.Addr, func(), error) {
	rc := c.Registrar
	log := logs.Part(c.Logger, "registrar")
	cfg := registrar.Config{
		Client:          etcd,
		LeaseClient:     lease,
		Keyspace:        c.Keyspace,
		VIPCIDR:         c.VIPCIDR,
		TokenFile:       rc.TokenFile,
		AuthReads:       rc.AuthReads,
		TLSCertFile:     rc.TLSCertFile,
		TLSKeyFile:      rc.TLSKeyFile,
		TLSClientCAFile: rc.TLSClientCAFile,
		AuditLog:        rc.AuditLog,
		AuditHeartbeats: rc.AuditHeartbeats,
		Logger:          log,
		AddrPolicy:      c.AddrPolicy,
		Limits:          rc.Limits,
		HostAddr:        rc.HostAddr,
		Checks:          rc.Checks,
	}
	if rc.Configure != nil {
		rc.Configure(&cfg)
	}
	r, err := registrar.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", rc.Addr)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Serve(sctx, ln); err != nil {
			log.Error("registrar stopped", "err", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the token file and TLS certificate")
				if err := r.Reload(); err != nil {
					log.Error("reload failed; the previous settings stay in force", "err", err)
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	return ln.Addr(), func() {
		signal.Stop(hup)
		cancel()
		<-done
		<-reloaded
		r.Close()
	}, nil
}
