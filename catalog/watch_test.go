package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
)

// TestWatchServiceWakesOnlyItsService: a watcher of one service is woken by
// a change to that service and by nothing else, so that a thousand
// watchers of a thousand services cost one wake-up per change, not a
// thousand (Consul's blocking queries wake every watcher of the catalog).
func TestWatchServiceWakesOnlyItsService(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	c := etcd.Client
	putService(t, c, "web", "127.77.0.1")
	putService(t, c, "db", "127.77.0.2")
	ix := startIndex(t, c, nil)

	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	web, stopWeb := ix.WatchService("web")
	defer stopWeb()
	absent, stopAbsent := ix.WatchService("cache")
	defer stopAbsent()

	// Changes to db (and a new service) are published, and wake neither.
	putInstance(t, c, "db", "a")
	putService(t, c, "queue", "127.77.0.3")
	resp, err := c.Get(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return ix.Snapshot().Revision() >= resp.Header.Revision-1 },
		"index never reached revision %d", resp.Header.Revision-1)
	if closed(web) || closed(absent) {
		t.Fatalf("a change to db or queue woke a watcher of web (%v) or cache (%v)", closed(web), closed(absent))
	}

	// Watchers of one service share its channel.
	web2, stopWeb2 := ix.WatchService("web")
	defer stopWeb2()
	if web2 != web {
		t.Error("two watchers of web got different channels")
	}

	putInstance(t, c, "web", "a")
	select {
	case <-web:
	case <-time.After(5 * time.Second):
		t.Fatal("an instance of web did not wake its watcher")
	}
	if e, ok := ix.Snapshot().Service("web"); !ok || e.Len() != 1 {
		t.Fatal("the woken watcher does not see the change")
	}
	if closed(absent) {
		t.Fatal("a change to web woke the watcher of cache")
	}

	// A service that appears wakes its watchers.
	putService(t, c, "cache", "127.77.0.4")
	select {
	case <-absent:
	case <-time.After(5 * time.Second):
		t.Fatal("a new service did not wake its watcher")
	}

	// After the wake, a new watch waits for the next change.
	again, stop := ix.WatchService("web")
	defer stop()
	if closed(again) {
		t.Fatal("a watch taken after the change is already closed")
	}
	if _, err := c.Delete(context.Background(), ks.ServiceKey("web")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(context.Background(), ks.InstanceKey("web", "a")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("deleting web did not wake its watcher")
	}
}
