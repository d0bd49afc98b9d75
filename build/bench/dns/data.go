package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/embedetcd"
)

// The dataset: service i is svc<i> with VIP 127.77.0.0+i+1 and one port
// "http"; its instance j is i<j> at 127.(1+k>>16).(k>>8).k with k = 3i+j+1,
// port 8000+j, weight 1.
func serviceName(i int) string { return fmt.Sprintf("svc%05d", i) }

func serviceVIP(i int) netip.Addr {
	k := i + 1
	return netip.AddrFrom4([4]byte{127, 77, byte(k >> 8), byte(k)})
}

func instanceAddr(i, j, per int) netip.Addr {
	k := i*per + j + 1
	return netip.AddrFrom4([4]byte{127, byte(1 + k>>16), byte(k >> 8), byte(k)})
}

func instanceID(j int) string { return fmt.Sprintf("i%d", j) }

func runEtcd(args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:23790", "client address")
	peer := fs.String("peer", "127.0.0.1:23800", "peer address")
	dir := fs.String("dir", "", "data directory")
	fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := embedetcd.Start(ctx, embedetcd.Config{Dir: *dir, ClientURL: "http://" + *listen, PeerURL: "http://" + *peer})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("etcd ready on", srv.ClientURL())
	<-ctx.Done()
	return nil
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	etcd := fs.String("etcd", "http://127.0.0.1:23790", "etcd URL")
	prefix := fs.String("prefix", catalog.DefaultPrefix, "netsel keyspace prefix")
	services := fs.Int("services", 1000, "services")
	per := fs.Int("instances", 3, "instances per service")
	skydns := fs.Bool("skydns", false, "also write the etcd plugin's SkyDNS layout under /skydns/netsel/")
	out := fs.String("out", "", "directory for hosts and query files")
	fs.Parse(args)

	ks, err := catalog.NewKeyspace(*prefix)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()

	ctx := context.Background()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 8)
		mu       sync.Mutex
		firstErr error
		ops      []clientv3.Op
	)
	flush := func() {
		batch := ops
		ops = nil
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := cli.Txn(ctx).Then(batch...).Commit(); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	add := func(op clientv3.Op) {
		if ops = append(ops, op); len(ops) == 128 {
			flush()
		}
	}
	now := time.Now()
	for i := range *services {
		name := serviceName(i)
		s := &catalog.Service{Name: name, VIP: serviceVIP(i), Created: now,
			Ports: []catalog.Port{{Name: "http", Port: 80, Protocol: catalog.ProtocolTCP}}}
		b, err := catalog.EncodeService(s)
		if err != nil {
			return err
		}
		add(clientv3.OpPut(ks.ServiceKey(name), string(b)))
		add(clientv3.OpPut(ks.VIPKey(s.VIP), name))
		for j := range *per {
			in := &catalog.Instance{ID: instanceID(j), Service: name, Address: instanceAddr(i, j, *per),
				Port: 8000 + j, Weight: 1, Registered: now}
			b, err := catalog.EncodeInstance(in)
			if err != nil {
				return err
			}
			add(clientv3.OpPut(ks.InstanceKey(name, in.ID), string(b)))
			if *skydns {
				v, _ := json.Marshal(map[string]any{"host": in.Address.String(), "port": in.Port})
				add(clientv3.OpPut("/skydns/netsel/"+name+"/"+in.ID, string(v)))
			}
		}
	}
	if len(ops) > 0 {
		flush()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("write: %w", firstErr)
	}
	if *out == "" {
		return nil
	}
	return writeFiles(*out, *services)
}

// writeFiles writes the hosts file and the dnsperf query files.
func writeFiles(dir string, services int) error {
	files := map[string]func(i int) string{
		"hosts":   func(i int) string { return serviceVIP(i).String() + " " + serviceName(i) + ".netsel." },
		"a.txt":   func(i int) string { return serviceName(i) + ".netsel. A" },
		"srv.txt": func(i int) string { return serviceName(i) + ".netsel. SRV" },
	}
	for name, line := range files {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		for i := range services {
			fmt.Fprintln(w, line(i))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
