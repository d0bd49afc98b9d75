package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/client"
)

// TestCLIRegisterTagsMetaZone: netsel register carries -tag (repeated or
// between commas), -meta, -zone and -protocol to the registrar, so tag names and zone
// preference can be tried from the command line; a -meta without "=" is
// refused.
func TestCLIRegisterTagsMetaZone(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	run1 := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code := run(ctx, append(args, "-registrar", reg.URL), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := run1("register", "web", "-port", "8080", "-once", "-id", "a", "-address", "127.0.0.1",
		"-tag", "v2,canary", "-tag", "blue", "-meta", "team=edge", "-meta", "v=1=2", "-zone", "east"); code != 0 {
		t.Fatalf("register: exit %d: %s", code, out)
	}
	c, err := client.New(client.Config{URLs: []string{reg.URL}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := c.Service(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Instances) != 1 {
		t.Fatalf("instances: %+v", svc.Instances)
	}
	in := svc.Instances[0]
	if !slices.Equal(in.Tags, []string{"v2", "canary", "blue"}) || in.Meta["team"] != "edge" || in.Meta["v"] != "1=2" || in.Zone != "east" {
		t.Errorf("registered tags %q meta %v zone %q; want [v2 canary blue], team=edge v=1=2, east", in.Tags, in.Meta, in.Zone)
	}
	if code, out := run1("register", "rpc", "-port", "9090", "-once", "-address", "127.0.0.1", "-protocol", "default=grpc"); code != 0 {
		t.Fatalf("register -protocol: exit %d: %s", code, out)
	}
	if rpc, err := c.Service(context.Background(), "rpc"); err != nil || len(rpc.Ports) != 1 || rpc.Ports[0].Protocol != "grpc" {
		t.Errorf("-protocol default=grpc: service %+v, %v; want its one port grpc", rpc, err)
	}
	if code, out := run1("register", "web", "-port", "8080", "-once", "-meta", "novalue"); code == 0 || !strings.Contains(out, "want KEY=VALUE") {
		t.Errorf("-meta novalue: exit %d, want a failure naming KEY=VALUE: %s", code, out)
	}
}
