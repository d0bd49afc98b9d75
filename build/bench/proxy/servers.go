package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/netsel/netsel/embedetcd"
)

// cmdEtcd runs an embedded etcd until interrupted.
func cmdEtcd(args []string) error {
	var fs flag.FlagSet
	addr := fs.String("addr", "127.0.0.1:23790", "client address")
	peer := fs.String("peer", "127.0.0.1:23800", "peer address")
	dir := fs.String("dir", "", "data directory")
	if err := parse("etcd", &fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{Dir: *dir, ClientURL: "http://" + *addr, PeerURL: "http://" + *peer})
	if err != nil {
		return err
	}
	defer srv.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-srv.Err():
		return fmt.Errorf("embedded etcd stopped: %w", err)
	}
}

// cmdHTTP serves a 2-byte answer to every request.
func cmdHTTP(args []string) error {
	var fs flag.FlagSet
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	if err := parse("http", &fs, args); err != nil {
		return err
	}
	body := []byte("ok")
	return http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

// cmdEcho echoes every TCP connection.
func cmdEcho(args []string) error {
	var fs flag.FlagSet
	addr := fs.String("addr", "127.0.0.1:18090", "listen address")
	if err := parse("echo", &fs, args); err != nil {
		return err
	}
	return serveTCP(*addr, func(c net.Conn) { io.Copy(c, c) })
}

// cmdCopyProxy is the baseline: the least a Go TCP proxy can do, io.Copy
// both ways between *net.TCPConn (splice on Linux), with half-close.
func cmdCopyProxy(args []string) error {
	var fs flag.FlagSet
	listen := fs.String("listen", "127.0.0.1:18100", "listen address")
	target := fs.String("target", "127.0.0.1:5201", "address to forward to")
	if err := parse("copyproxy", &fs, args); err != nil {
		return err
	}
	return serveTCP(*listen, func(c net.Conn) {
		u, err := net.Dial("tcp", *target)
		if err != nil {
			return
		}
		defer u.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(u, c)
			u.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, u)
		c.(*net.TCPConn).CloseWrite()
		<-done
	})
}

// serveTCP accepts connections on addr until accepting fails, handling
// each in its own goroutine and closing it after.
func serveTCP(addr string, handle func(net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
