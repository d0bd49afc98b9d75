package registrar_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestLifecycle registers an instance, reads it, heartbeats it, lets it
// expire within TTL+1s of its last heartbeat, sees the heartbeat answered
// 404, and registers it again with the same id and VIP.
func TestLifecycle(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)

	req := api.RegisterRequest{ID: "web-1", Address: "127.0.0.1", Port: 8080, TTL: api.Duration(5 * time.Second)}
	first := register(t, reg.URL, "web", req)
	if first.ID != "web-1" || !first.VIP.IsValid() || first.Port != 8080 || first.TTL.Std() != 5*time.Second {
		t.Fatalf("register answered %+v", first)
	}
	if !reg.Registrar.Index().Snapshot().Synced() {
		testenv.Eventually(t, 10*time.Second, func() bool { return reg.Registrar.Index().Snapshot().Synced() }, "index not synced")
	}

	r := do(t, "GET", reg.URL+"/v1/services/web", nil)
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	var view api.ServiceView
	r.decode(t, &view)
	if view.VIP != first.VIP || len(view.Instances) != 1 || view.Instances[0].ID != "web-1" || view.Instances[0].Port != 8080 {
		t.Fatalf("get answered %+v", view)
	}
	if r.header.Get(api.IndexHeader) == "" {
		t.Errorf("no %s header", api.IndexHeader)
	}

	hb := reg.URL + "/v1/services/web/instances/web-1/heartbeat"
	var last time.Time
	for range 3 {
		if r := do(t, "PUT", hb, nil); r.status != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", r.status, r.body)
		}
		last = time.Now()
		time.Sleep(700 * time.Millisecond) // heartbeat pacing, not a wait for state
	}
	// The instance must vanish within TTL+1s of its last heartbeat.
	key := ks.InstanceKey("web", "web-1")
	testenv.Eventually(t, 8*time.Second, func() bool {
		resp, err := etcd.Client.Get(context.Background(), key, clientv3.WithCountOnly())
		return err == nil && resp.Count == 0
	}, "instance key still present")
	if gone := time.Since(last); gone > 6*time.Second+500*time.Millisecond {
		t.Errorf("instance vanished %v after its last heartbeat; want <= TTL+1s", gone)
	} else if gone < 4*time.Second {
		t.Errorf("instance vanished %v after its last heartbeat; want about the 5s TTL", gone)
	}

	r = do(t, "PUT", hb, nil)
	if r.status != http.StatusNotFound {
		t.Fatalf("heartbeat after expiry: %d %s, want 404", r.status, r.body)
	}

	again := register(t, reg.URL, "web", req)
	if again.VIP != first.VIP || again.ID != "web-1" || again.Lease == first.Lease {
		t.Fatalf("re-register answered %+v, first %+v", again, first)
	}
}
