package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestCLIMaintDrainReaders: "netsel maint" takes an instance out of
// rotation with a reason that "netsel instances" shows in its STATE column,
// and -off puts it back; "netsel readers" lists the readers; "netsel drain"
// names the reader that did not confirm and exits 3, then deregisters.
func TestCLIMaintDrainReaders(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	r := reg.URL
	cli := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code := run(ctx, append(args, "-registrar", r), &stdout, &stderr); code != want {
			t.Fatalf("netsel %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, &stdout, &stderr)
		}
		return stdout.String()
	}
	cli(0, "register", "web", "-port", "8080", "-once", "-id", "a1", "-address", "127.0.0.1")
	cli(0, "register", "web", "-port", "8080", "-once", "-id", "a2", "-address", "127.0.0.2")
	cli(0, "maint", "web", "a1", "-reason", "disk swap")
	out := cli(0, "instances", "web")
	if !strings.Contains(out, "maintenance (disk swap)") || !strings.Contains(out, "STATE") {
		t.Errorf("instances in maintenance:\n%s", out)
	}
	if out := cli(0, "instances", "web", "-state", ""); strings.Contains(out, "a1") {
		t.Errorf("default listing shows the instance in maintenance:\n%s", out)
	}
	cli(0, "maint", "web", "a1", "-off")
	if out := cli(0, "instances", "web", "-state", ""); !strings.Contains(out, "a1") || !strings.Contains(out, "passing") {
		t.Errorf("after -off:\n%s", out)
	}
	cli(1, "maint", "web", "nosuch")

	v, err := catalog.EncodeReader(&catalog.Reader{ID: "proxy-9", Kind: catalog.ReaderProxy, Host: "h9", Revision: 1, Updated: time.Now(),
		Connections: map[string]int{"web/a1": 2}})
	if err != nil {
		t.Fatal(err)
	}
	ks := catalog.MustKeyspace(catalog.DefaultPrefix)
	l, err := etcd.Client.Grant(context.Background(), 60) // a live reader's key has a lease
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Put(context.Background(), ks.ReaderKey("proxy-9"), string(v), clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	if out := cli(0, "readers"); !strings.Contains(out, "proxy-9") || !strings.Contains(out, "web/a1=2") {
		t.Errorf("readers:\n%s", out)
	}
	out = cli(3, "drain", "web", "a1", "-timeout", "1s", "-wait-connections")
	if !strings.Contains(out, "NOT confirmed (timeout)") || !strings.Contains(out, "proxy-9") || !strings.Contains(out, "deregistered") {
		t.Errorf("drain that timed out:\n%s", out)
	}
	if out := cli(0, "instances", "web"); strings.Contains(out, "a1") {
		t.Errorf("a1 is still registered after its drain:\n%s", out)
	}
	if _, err := etcd.Client.Delete(context.Background(), ks.ReaderKey("proxy-9")); err != nil {
		t.Fatal(err)
	}
	out = cli(0, "drain", "web", "a2", "-keep")
	if !strings.Contains(out, "confirmed by every reader") || strings.Contains(out, "deregistered") {
		t.Errorf("drain -keep:\n%s", out)
	}
	if out := cli(0, "instances", "web"); !strings.Contains(out, "draining") {
		t.Errorf("after drain -keep:\n%s", out)
	}
	cli(0, "drain", "web", "a2", "-off")
	if out := cli(0, "instances", "web"); !strings.Contains(out, "passing") {
		t.Errorf("after drain -off:\n%s", out)
	}
}

// TestWaitingFor: a drain that timed out says what each pending reader
// still held it for — a reader at the drain's revision with no connection
// was pending only for its DNS answers' TTL, which the bare revision column
// made look like a fault.
func TestWaitingFor(t *testing.T) {
	for _, tc := range []struct {
		p     api.ReaderView
		conns int
		want  string
	}{
		{api.ReaderView{Revision: 9}, 0, "revision"},
		{api.ReaderView{Revision: 10}, 2, "connections"},
		{api.ReaderView{Revision: 11, AnswerTTL: api.Duration(5 * time.Second)}, 0, "its answers' TTL (5s)"},
		{api.ReaderView{Revision: 10}, 0, "-"},
	} {
		if got := waitingFor(tc.p, 10, tc.conns); got != tc.want {
			t.Errorf("waitingFor(%+v, 10, %d) = %q, want %q", tc.p, tc.conns, got, tc.want)
		}
	}
}
