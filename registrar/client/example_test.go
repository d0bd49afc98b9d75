package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// A service keeps itself registered until it is interrupted, then
// deregisters. With no ID, Keepalive picks one before its first attempt
// and keeps it across retries, fail-overs and re-registrations.
func ExampleClient_Keepalive() {
	c, err := client.New(client.Config{
		URLs: []string{"http://127.0.0.1:9000", "http://127.0.0.1:9001"}, // fail-over order
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = c.Keepalive(ctx, client.Registration{
		Service: "web",
		Address: "127.0.0.1",
		Port:    8080,
		TTL:     30 * time.Second,
	}, client.KeepaliveOptions{
		Interval: 5 * time.Second,
		OnEvent: func(ev client.Event) {
			if ev.Kind == client.EventRegistered {
				fmt.Printf("registered %s: %s:%d\n", ev.Assignment.ID, ev.Assignment.VIP, ev.Assignment.Port)
			}
		},
	})
	if err != nil {
		log.Fatal(err) // a 4xx retrying cannot fix: a bad registration or token
	}
}

// One registration, no heartbeats: the instance expires after its TTL.
// Register picks the id when none is given, so a fail-over after a lost
// answer registers the same instance again rather than a second one; the
// Assignment says which id it was.
func ExampleClient_Register() {
	c, err := client.New(client.Config{URLs: []string{"http://127.0.0.1:9000"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := c.Register(ctx, client.Registration{Service: "batch", Address: "127.0.0.1", Port: 9090, TTL: 5 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", a.ID, "at", a.VIP)
}

// A service on a host of many listens on every address and leaves
// Address empty: Register fills in this host's source address on its route
// to the registrar, which other hosts reach it at. When the registrar runs
// on this host the route is loopback, so the client sends no address and
// the registrar fills in its host's; the Assignment says which address was
// registered. (A registrar serving many hosts refuses 127.0.0.1, which
// only this host could reach.)
func ExampleClient_Register_address() {
	ln, err := net.Listen("tcp", ":0") // every address of this host
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	c, err := client.New(client.Config{URLs: []string{"http://198.18.0.1:9000"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := c.Register(ctx, client.Registration{Service: "api", Port: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", a.ID, "at", a.Address, "behind", a.VIP)
}

// A rolling restart takes an instance out of rotation before it stops:
// Drain returns once every DNS server and proxy has stopped sending it new
// traffic and, with Connections, the proxies hold no connection to it;
// then the instance is deregistered. Keepalive does this by itself when
// its ctx ends (KeepaliveOptions.DrainTimeout).
func ExampleClient_Drain() {
	c, err := client.New(client.Config{URLs: []string{"http://127.0.0.1:9000"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Drain(ctx, "web", "web-1", client.DrainOptions{Timeout: 30 * time.Second, Connections: true})
	if err != nil {
		log.Fatal(err)
	}
	if !res.Confirmed {
		for _, r := range res.Pending {
			fmt.Printf("reader %s (%s on %s) still at revision %d of %d\n", r.ID, r.Kind, r.Host, r.Revision, res.Revision)
		}
	}
	fmt.Println("drained in", time.Duration(res.Waited), "deregistered:", res.Deregistered)
}
