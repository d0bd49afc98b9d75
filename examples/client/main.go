// Command client checks every path of a running NetSel end to end: it
// registers a probe instance and heartbeats it through the registrar API,
// then finds the echo service (run examples/service first) through the API
// and DNS, and talks to it through the HTTP proxy and through its VIP.
//
// Each check prints one line; the exit status is 1 when any check failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// config says where each part of NetSel is.
type config struct {
	registrars []string
	dns        string
	zone       string
	httpProxy  string
	service    string
	timeout    time.Duration
}

func main() {
	var c config
	registrars := flag.String("registrar", envOr("NETSEL_REGISTRAR", "http://127.0.0.1:9000"), "comma-separated registrar URLs")
	flag.StringVar(&c.dns, "dns", "127.0.0.1:5353", "NetSel DNS server")
	flag.StringVar(&c.zone, "zone", "netsel.", "NetSel DNS zone")
	flag.StringVar(&c.httpProxy, "http", "127.0.0.1:8081", "NetSel HTTP proxy")
	flag.StringVar(&c.service, "service", "echo", "the echo service to talk to")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "time limit of each check")
	flag.Parse()
	c.registrars = strings.Split(*registrars, ",")
	if !strings.HasSuffix(c.zone, ".") {
		c.zone += "."
	}
	if failed := run(c); failed > 0 {
		fmt.Printf("\n%d check(s) failed\n", failed)
		os.Exit(1)
	}
	fmt.Println("\nall checks passed")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// checker runs checks, printing one line each, and counts failures.
type checker struct {
	timeout time.Duration
	failed  int
}

func (ck *checker) check(name string, f func(ctx context.Context) (string, error)) bool {
	ctx, cancel := context.WithTimeout(context.Background(), ck.timeout)
	defer cancel()
	start := time.Now()
	detail, err := f(ctx)
	took := time.Since(start).Round(100 * time.Microsecond)
	if err != nil {
		ck.failed++
		fmt.Printf("FAIL  %-34s %v (%v)\n", name, err, took)
		return false
	}
	fmt.Printf("ok    %-34s %s (%v)\n", name, detail, took)
	return true
}

func run(c config) int {
	ck := &checker{timeout: c.timeout}
	api, err := client.New(client.Config{URLs: c.registrars})
	if err != nil {
		fmt.Println("FAIL ", err)
		return 1
	}
	checkRegistrar(ck, api)
	target, ok := findService(ck, api, c.service)
	if !ok {
		return ck.failed
	}
	checkDNS(ck, c, target)
	checkHTTPProxy(ck, c)
	checkVIP(ck, target)
	return ck.failed
}
