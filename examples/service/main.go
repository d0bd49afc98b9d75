// Command service is an example NetSel service: an echo server that registers
// itself with the registrar and heartbeats. On Ctrl-C or SIGTERM it drains —
// DNS and the proxies stop sending it new traffic, and it waits until every
// one of them confirms and the proxies' connections to it have closed (up
// to -drain-timeout) — then deregisters and exits: restart copies one by
// one and no request fails.
//
// It listens on two ports, registered as named ports of the service:
//
//	http  answers every request with "echo from <id>: <method> <path>",
//	      and GET /healthz with "ok" (the registrars check it every
//	      -check-interval; SIGUSR1 makes it fail, and again pass)
//	echo  a raw TCP line echo, prefixed with the instance id
//
// Run several copies to see load-balancing: each gets its own ports and id,
// and all share the service's one VIP.
//
// It listens on and registers 127.0.0.1 unless told otherwise by -host. On
// one host of many, run it with -host "" (or 0.0.0.0): it listens on every
// address and leaves the address to register to the client library, which
// fills in this host's address on the route to the registrar.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

func main() {
	name := flag.String("name", "echo", "service name to register under")
	id := flag.String("id", "", "instance id (default: one the registrar generates)")
	host := flag.String("host", "127.0.0.1", `address to listen on and register; "" or 0.0.0.0 listens on every address and registers the one the client library fills in (this host's address on the route to the registrar), as a service on one host of many does`)
	httpPort := flag.Int("http-port", 0, "HTTP port (0 picks a free one)")
	echoPort := flag.Int("echo-port", 0, "TCP echo port (0 picks a free one)")
	registrars := flag.String("registrar", envOr("NETSEL_REGISTRAR", "http://127.0.0.1:9000"), "comma-separated registrar URLs")
	ttl := flag.Duration("ttl", 60*time.Second, "how long the instance outlives its last heartbeat")
	interval := flag.Duration("interval", 10*time.Second, "time between heartbeats")
	check := flag.Duration("check-interval", 5*time.Second, "time between the registrars' checks of GET /healthz (0: no check); kill -USR1 the process to make the check fail, and again to make it pass")
	drain := flag.Duration("drain-timeout", 10*time.Second, "on Ctrl-C or SIGTERM, longest wait for every DNS server and proxy to stop sending this instance traffic and close their connections to it, before it deregisters and exits (0: deregister at once)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *drain <= 0 {
		*drain = -1 // KeepaliveOptions: no drain
	}
	o := options{name: *name, id: *id, host: *host, httpPort: *httpPort, echoPort: *echoPort,
		registrars: *registrars, ttl: *ttl, interval: *interval, drain: *drain, check: *check}
	if err := run(o, log); err != nil {
		log.Error("service failed", "err", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// options are the command's settings.
type options struct {
	name, id, host       string
	httpPort, echoPort   int
	registrars           string
	ttl, interval, drain time.Duration
	check                time.Duration // 0: no health check
}

func run(o options, log *slog.Logger) error {
	name, id, host, httpPort, echoPort, registrars := o.name, o.id, o.host, o.httpPort, o.echoPort, o.registrars
	ttl, interval, drain := o.ttl, o.interval, o.drain
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	httpLn, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(httpPort)))
	if err != nil {
		return err
	}
	echoLn, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(echoPort)))
	if err != nil {
		return err
	}
	hp := httpLn.Addr().(*net.TCPAddr).Port
	ep := echoLn.Addr().(*net.TCPAddr).Port

	// The instance id is known only after registration when the registrar
	// picks it; the servers read it from here.
	var self idHolder
	self.set(id)
	var sick atomic.Bool
	go toggleOnUSR1(ctx, &sick, log)
	srv := &http.Server{Handler: echoHandler(&self, &sick), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(httpLn)
	go serveEcho(echoLn, &self, log)
	log.Info("echo service listening", "http", httpLn.Addr(), "echo", echoLn.Addr())

	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.New(client.Config{URLs: strings.Split(registrars, ","), Logger: quiet})
	if err != nil {
		return err
	}
	reg := client.Registration{
		Service: name, ID: id, Address: registered(host), Port: hp,
		Ports: map[string]int{"http": hp, "echo": ep},
		TTL:   ttl,
	}
	if o.check > 0 {
		reg.Checks = []api.Check{{Type: "http", Path: "/healthz", Port: "http", Interval: api.Duration(o.check)}}
	}
	// Keepalive returns once the instance is drained and deregistered: the
	// servers keep serving until then.
	err = c.Keepalive(ctx, reg, client.KeepaliveOptions{
		Interval:         interval,
		DrainTimeout:     drain,
		DrainConnections: true,
		OnEvent: func(ev client.Event) {
			switch ev.Kind {
			case client.EventRegistered:
				a := ev.Assignment
				self.set(a.ID)
				log.Info("registered", "service", name, "id", a.ID, "vip", a.VIP,
					"http", net.JoinHostPort(a.VIP.String(), fmt.Sprint(a.Ports["http"])),
					"echo", net.JoinHostPort(a.VIP.String(), fmt.Sprint(a.Ports["echo"])),
					"address", a.Address, "ttl", time.Duration(a.TTL), "heartbeat", interval)
			case client.EventExpired:
				log.Warn("registration expired; registering again")
			case client.EventRetry:
				log.Warn("registrar call failed; retrying", "err", ev.Err)
			case client.EventDrained:
				switch d := ev.Drain; {
				case ev.Err != nil:
					log.Warn("drain failed; deregistering without it", "err", ev.Err)
				case d.Confirmed:
					log.Info("drained", "readers", d.Readers, "waited", time.Duration(d.Waited))
				default:
					log.Warn("drain not confirmed by every reader", "ended", d.Ended, "pending", len(d.Pending), "readers", d.Readers)
				}
			case client.EventDeregistered:
				if ev.Err != nil {
					log.Warn("deregister failed; the instance expires with its TTL", "err", ev.Err)
				} else {
					log.Info("deregistered")
				}
			}
		},
	})
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	echoLn.Close()
	return err
}

// registered returns the address to register for the listen address
// host: none, for the client library to fill in, when host stands for
// every address.
func registered(host string) string {
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		return ""
	}
	return host
}

func echoHandler(self *idHolder, sick *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if sick.Load() {
				http.Error(w, "made sick by SIGUSR1", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok\n")
			return
		}
		fmt.Fprintf(w, "echo from %s: %s %s\n", self.get(), r.Method, r.URL.Path)
	})
}

// toggleOnUSR1 flips sick on every SIGUSR1 until ctx ends.
func toggleOnUSR1(ctx context.Context, sick *atomic.Bool, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	for {
		select {
		case <-ch:
			failing := !sick.Load()
			sick.Store(failing)
			log.Info("SIGUSR1: GET /healthz now", "failing", failing)
		case <-ctx.Done():
			return
		}
	}
}

func serveEcho(ln net.Listener, self *idHolder, log *slog.Logger) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("echo accept", "err", err)
			}
			return
		}
		go func() {
			defer conn.Close()
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := fmt.Fprintf(conn, "%s: %s\n", self.get(), sc.Text()); err != nil {
					return
				}
			}
		}()
	}
}
