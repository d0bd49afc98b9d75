package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// backend is one real instance of soak-web: an HTTP server answering its
// name, and a TCP echo server, on loopback.
type backend struct {
	name     string
	httpPort int
	echoPort int
	closers  []io.Closer
}

// startBackend starts backend name on free loopback ports.
func startBackend(name string) (*backend, error) {
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	b := &backend{
		name:     name,
		httpPort: hl.Addr().(*net.TCPAddr).Port,
		echoPort: el.Addr().(*net.TCPAddr).Port,
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, name)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go srv.Serve(hl)
	go serveEcho(el)
	b.closers = []io.Closer{srv, el}
	return b, nil
}

// serveEcho echoes every connection accepted on ln until ln closes.
func serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			io.Copy(c, c)
		}()
	}
}

func (b *backend) Close() {
	for _, c := range b.closers {
		c.Close()
	}
}
