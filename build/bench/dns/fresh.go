package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/client"
)

// runFresh measures, n times, the time from a registration's HTTP 200 (with
// -registrar) or from the start of an instance's write to etcd (without) to
// the first DNS answer that has it, polling the DNS server as fast as it
// answers.
func runFresh(args []string) error {
	fs := flag.NewFlagSet("fresh", flag.ExitOnError)
	etcd := fs.String("etcd", "http://127.0.0.1:23790", "etcd URL")
	prefix := fs.String("prefix", catalog.DefaultPrefix, "netsel keyspace prefix")
	addr := fs.String("dns", "127.0.0.1:25301", "DNS server")
	n := fs.Int("n", 1000, "registrations")
	registrar := fs.String("registrar", "", "register through this registrar's REST API and time from its HTTP 200")
	fs.Parse(args)
	if *registrar != "" {
		return freshViaRegistrar(*registrar, *addr, *n)
	}

	ks, err := catalog.NewKeyspace(*prefix)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()

	ctx := context.Background()
	svc := &catalog.Service{Name: "fresh", VIP: serviceVIP(65000), Created: time.Now(),
		Ports: []catalog.Port{{Name: catalog.DefaultPortName, Port: 9000, Protocol: catalog.ProtocolTCP}}}
	sb, err := catalog.EncodeService(svc)
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, ks.ServiceKey(svc.Name), string(sb)); err != nil {
		return err
	}
	var lat []time.Duration
	for i := range *n {
		in := &catalog.Instance{ID: fmt.Sprintf("f%d", i), Service: "fresh", Address: instanceAddr(i, 0, 1),
			Port: 9000, Weight: 1, Registered: time.Now()}
		b, err := catalog.EncodeInstance(in)
		if err != nil {
			return err
		}
		q := new(dns.Msg)
		q.SetQuestion(in.ID+".fresh.netsel.", dns.TypeA)
		start := time.Now()
		if _, err := cli.Put(ctx, ks.InstanceKey("fresh", in.ID), string(b)); err != nil {
			return err
		}
		if err := pollUntilAnswered(c, conn, q, start); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	printFreshness("etcd put start", lat)
	return nil
}

// pollUntilAnswered repeats q until the server answers it with one record,
// for at most 10 s after start.
func pollUntilAnswered(c *dns.Client, conn *dns.Conn, q *dns.Msg, start time.Time) error {
	for {
		q.Id = dns.Id()
		r, _, err := c.ExchangeWithConn(q, conn)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("%s not answered after 10 s", q.Question[0].Name)
		}
	}
}

func printFreshness(from string, lat []time.Duration) {
	slices.Sort(lat)
	fmt.Printf("freshness (from %s) over %d registrations: p50 %v p99 %v max %v\n", from, len(lat),
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
}

// freshViaRegistrar registers n instances through the registrar and times
// each from the HTTP 200 to the first DNS answer with it.
func freshViaRegistrar(registrar, addr string, n int) error {
	rc, err := client.New(client.Config{URLs: []string{registrar}})
	if err != nil {
		return err
	}
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	conn, err := c.Dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := context.Background()
	var lat []time.Duration
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		if _, err := rc.Register(ctx, client.Registration{Service: "freshreg", ID: id,
			Address: instanceAddr(i, 0, 1).String(), Port: 9000, TTL: time.Hour}); err != nil {
			return err
		}
		start := time.Now()
		q := new(dns.Msg)
		q.SetQuestion(id+".freshreg.netsel.", dns.TypeA)
		if err := pollUntilAnswered(c, conn, q, start); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	printFreshness("the registration's HTTP 200", lat)
	return nil
}

// runLatency reads dnsperf -v output ("> NOERROR name type 0.000123") on
// stdin and prints the mean and p99 latency in milliseconds.
func runLatency(args []string) error {
	var lat []float64
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != ">" {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		lat = append(lat, v*1000)
	}
	if len(lat) == 0 {
		return fmt.Errorf("no per-query lines in the input")
	}
	slices.Sort(lat)
	sum := 0.0
	for _, v := range lat {
		sum += v
	}
	p99 := lat[int(math.Ceil(float64(len(lat))*0.99))-1]
	fmt.Printf("%.3f %.3f\n", sum/float64(len(lat)), p99)
	return nil
}
