package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// cmdRegister writes a service with a VIP and one instance, as the
// registrar would, through the catalog package's encoders and key builders.
func cmdRegister(args []string) error {
	var fs flag.FlagSet
	etcd := fs.String("etcd", "http://127.0.0.1:23790", "etcd client URL")
	service := fs.String("service", "bench", "service name")
	vip := fs.String("vip", "127.77.100.1", "service VIP")
	port := fs.Int("port", 9000, "virtual port")
	addr := fs.String("addr", "127.0.0.1:18080", "instance address host:port")
	id := fs.String("id", "i1", "instance id")
	if err := parse("register", &fs, args); err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = register(ctx, cli, catalog.MustKeyspace(catalog.DefaultPrefix), *service, *id, netip.MustParseAddr(*vip), *port, netip.MustParseAddrPort(*addr))
	return err
}

func register(ctx context.Context, cli *clientv3.Client, ks catalog.Keyspace, name, id string, vip netip.Addr, port int, inst netip.AddrPort) (time.Time, error) {
	svc, err := catalog.EncodeService(&catalog.Service{Name: name, VIP: vip, Created: time.Now(),
		Ports: []catalog.Port{{Name: catalog.DefaultPortName, Port: port, Protocol: catalog.ProtocolTCP}}})
	if err != nil {
		return time.Time{}, err
	}
	in, err := catalog.EncodeInstance(&catalog.Instance{ID: id, Service: name, Address: inst.Addr(),
		Port: int(inst.Port()), Weight: 1, Registered: time.Now()})
	if err != nil {
		return time.Time{}, err
	}
	_, err = cli.Txn(ctx).Then(
		clientv3.OpPut(ks.ServiceKey(name), string(svc)),
		clientv3.OpPut(ks.VIPKey(vip), name),
		clientv3.OpPut(ks.InstanceKey(name, id), string(in)),
	).Commit()
	return time.Now(), err
}

// cmdConnRate opens, uses (1 byte echoed) and closes connections to addr
// from c goroutines for d, and prints connections per second.
func cmdConnRate(args []string) error {
	var fs flag.FlagSet
	addr := fs.String("addr", "127.0.0.1:18090", "address of an echo service")
	d := fs.Duration("d", 5*time.Second, "duration")
	c := fs.Int("c", 8, "concurrent clients")
	if err := parse("connrate", &fs, args); err != nil {
		return err
	}
	var ok, failed atomic.Int64
	deadline := time.Now().Add(*d)
	var wg sync.WaitGroup
	for range *c {
		wg.Go(func() {
			buf := make([]byte, 1)
			for time.Now().Before(deadline) {
				conn, err := net.DialTimeout("tcp", *addr, time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				conn.SetDeadline(time.Now().Add(time.Second))
				_, err = conn.Write(buf)
				if err == nil {
					_, err = conn.Read(buf)
				}
				// RST on close so the client side does not pile up TIME_WAIT.
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.0f\n", float64(ok.Load())/d.Seconds())
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d connections failed", f)
	}
	return nil
}

// cmdListenerLatency registers n new services one after another and prints
// the median and maximum time from the etcd write's return to the first
// successful connection through the new VIP listener.
func cmdListenerLatency(args []string) error {
	var fs flag.FlagSet
	etcd := fs.String("etcd", "http://127.0.0.1:23790", "etcd client URL")
	n := fs.Int("n", 20, "services to register")
	target := fs.String("target", "127.0.0.1:18090", "instance address (an echo server)")
	if err := parse("listener-latency", &fs, args); err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	var lat []time.Duration
	stamp := time.Now().Unix() % 100000
	for i := range *n {
		name := fmt.Sprintf("lat%d-%d", stamp, i)
		vip := netip.AddrFrom4([4]byte{127, 77, 201, byte(1 + i%250)})
		port, err := freePort(vip)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0, err := register(ctx, cli, ks, name, "i1", vip, port, netip.MustParseAddrPort(*target))
		cancel()
		if err != nil {
			return err
		}
		addr := netip.AddrPortFrom(vip, uint16(port)).String()
		for {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Since(t0) > 5*time.Second {
				return fmt.Errorf("%s never opened", addr)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
		if _, err := cli.Delete(context.Background(), ks.ServiceKey(name)); err != nil {
			return err
		}
		cli.Delete(context.Background(), ks.ServiceInstancesPrefix(name), clientv3.WithPrefix())
		cli.Delete(context.Background(), ks.VIPKey(vip))
	}
	slices.Sort(lat)
	fmt.Printf("median %v max %v (n=%d)\n", lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), len(lat))
	return nil
}

// freePort returns a port free on ip at the time of the call.
func freePort(ip netip.Addr) (int, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
