package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestEmbeddedEtcdWithAuth turns etcd authentication on in the runner's
// embedded etcd. The registrar must then stop calling etcd in-process (that
// client carries no credentials) and dial it with -etcd-user; without
// credentials it must say why it cannot work rather than hang. The subtests
// run in order on one data directory: each needs the state the one before
// left.
func TestEmbeddedEtcdWithAuth(t *testing.T) {
	f := stackFlags(t, "127.79.0.0/16")
	f.dns, f.http, f.vipProxy = "", "", false
	register := func(t *testing.T, id string) error {
		t.Helper()
		c, err := client.New(client.Config{URLs: []string{"http://" + f.registrar}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = c.Register(ctx, client.Registration{Service: "web", ID: id, Address: "127.0.0.1", Port: 8080})
		return err
	}

	t.Run("no auth: in-process", func(t *testing.T) {
		logs := runTestStack(t, f)
		if err := register(t, "a"); err != nil {
			t.Fatalf("register: %v", err)
		}
		if !strings.Contains(logs.String(), "calls the embedded etcd in-process") {
			t.Errorf("the registrar does not call etcd in-process although auth is off; logs:\n%s", logs)
		}
		cli := testenv.NewClient(t, "http://"+f.etcdListen)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, op := range []func() error{
			func() error { _, err := cli.UserAdd(ctx, "root", "s3cret"); return err },
			func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
			func() error { _, err := cli.AuthEnable(ctx); return err },
		} {
			if err := op(); err != nil {
				t.Fatalf("enable etcd auth: %v", err)
			}
		}
	})

	t.Run("auth, no credentials: health says why", func(t *testing.T) {
		logs := runTestStack(t, f)
		if !strings.Contains(logs.String(), "over its client URL") || strings.Contains(logs.String(), "in-process") {
			t.Errorf("no word that the registrar dials etcd; logs:\n%s", logs)
		}
		var h struct{ Status, Etcd string }
		testenv.Eventually(t, 10*time.Second, func() bool {
			resp, err := http.Get("http://" + f.registrar + "/v1/health")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusServiceUnavailable && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Etcd != "ok"
		}, "health not 503 with the etcd error")
		if !strings.Contains(h.Etcd, "user name") && !strings.Contains(h.Etcd, "permission") {
			t.Errorf("health's etcd field %q does not name the authentication problem", h.Etcd)
		}
	})

	t.Run("auth with -etcd-user", func(t *testing.T) {
		t.Setenv("NETSEL_ETCD_PASSWORD", "s3cret")
		f := f
		f.etcdUser = "root"
		runTestStack(t, f)
		if err := register(t, "b"); err != nil {
			t.Fatalf("register: %v", err)
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + f.etcdListen}, Username: "root", Password: "s3cret", DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/netsel/instances/web/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 2 {
			t.Fatalf("instances of web in etcd: %v, %v; want a and b", resp, err)
		}
	})
}
