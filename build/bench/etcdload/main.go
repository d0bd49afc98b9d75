// Command etcdload drives raw etcd (Grant+Put, KeepAliveOnce) with N concurrent
// goroutines for a fixed time, the baseline the registrar is compared with,
// and pre-registers instances through a registrar for the heartbeat runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/registrar/client"
)

func main() {
	etcd := flag.String("etcd", "http://127.0.0.1:2379", "etcd client URL")
	mode := flag.String("mode", "grantput", "grantput: Grant+Put a new leased key; keepalive: KeepAliveOnce on -n leases; prereg: register -n instances i0..i<n-1> of services s0..s49 through -registrar")
	n := flag.Int("n", 10000, "leases (keepalive) or instances (prereg)")
	c := flag.Int("c", 64, "concurrent goroutines")
	d := flag.Duration("d", 10*time.Second, "duration of the run")
	reg := flag.String("registrar", "http://127.0.0.1:9000", "registrar URL for -mode prereg")
	ttl := flag.Duration("ttl", time.Hour, "TTL of the leases granted (grantput, keepalive) and of the instances registered (prereg); long enough that none expires during a benchmark")
	flag.Parse()
	ctx := context.Background()
	if *mode == "prereg" {
		rc, err := client.New(client.Config{URLs: []string{*reg}})
		if err != nil {
			log.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < *n; i += 32 {
					_, err := rc.Register(ctx, client.Registration{Service: fmt.Sprintf("s%d", i%50), ID: fmt.Sprintf("i%d", i), Address: "127.0.0.1", Port: 8080, TTL: *ttl})
					if err != nil {
						log.Fatal(err)
					}
				}
			}(w)
		}
		wg.Wait()
		return
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcd}})
	if err != nil {
		log.Fatal(err)
	}
	var leases []clientv3.LeaseID
	if *mode == "keepalive" {
		for i := 0; i < *n; i++ {
			l, err := cli.Grant(ctx, int64(ttl.Seconds()))
			if err != nil {
				log.Fatal(err)
			}
			leases = append(leases, l.ID)
		}
	}
	var ops atomic.Int64
	deadline := time.Now().Add(*d)
	var wg sync.WaitGroup
	for g := 0; g < *c; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; time.Now().Before(deadline); i += *c {
				switch *mode {
				case "grantput":
					l, err := cli.Grant(ctx, int64(ttl.Seconds()))
					if err != nil {
						log.Fatal(err)
					}
					if _, err := cli.Put(ctx, fmt.Sprintf("/raw/%d/%d", g, i), "x", clientv3.WithLease(l.ID)); err != nil {
						log.Fatal(err)
					}
				case "keepalive":
					if _, err := cli.KeepAliveOnce(ctx, leases[i%len(leases)]); err != nil {
						log.Fatal(err)
					}
				}
				ops.Add(1)
			}
		}(g)
	}
	wg.Wait()
	fmt.Printf("%s %.0f ops/s\n", *mode, float64(ops.Load())/d.Seconds())
}
