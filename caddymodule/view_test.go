package caddymodule

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/netsel/netsel/internal/testenv"
)

// TestViewHoldsNoSnapshot checks that a service's view, which lives as
// long as its service is unchanged, does not keep alive the catalog
// snapshot it was built from: that snapshot holds every other service's
// instances of its time, so with many services changing, views holding
// snapshots would keep memory growing with services × changes.
func TestViewHoldsNoSnapshot(t *testing.T) {
	e := newEnv(t)
	e.service("steady", randomVIP())
	e.instance("steady", "a", "10.0.0.1:80", 1)
	e.service("busy", randomVIP())
	ix := syncedIndex(t, e.cli)
	app := &App{index: ix}

	built := weak.Make(ix.Snapshot())
	v := app.view("steady")
	if v == nil || len(v.dials) != 1 || v.allowed == nil {
		t.Fatalf("view of steady: %+v", v)
	}
	// Another service changes: a new snapshot, in which steady's entry,
	// and so its view, stays the same.
	e.instance("busy", "b", "10.0.0.2:80", 1)
	testenv.Eventually(t, 10*time.Second, func() bool {
		s := ix.Snapshot()
		_, ok := s.Service("busy")
		return ok && s != built.Value()
	}, "the index never saw the change")
	if app.view("steady") != v {
		t.Fatal("steady's view was rebuilt though steady did not change")
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		runtime.GC()
		return built.Value() == nil
	}, "the snapshot steady's view was built from is still alive")
	runtime.KeepAlive(v)
}
