package caddymodule

import (
	"sync"
	"testing"
)

// TestOpenConnsRace opens and closes connections to one instance from many
// goroutines, so counters retire while others open: every count must come
// back to zero, and a connection held throughout must always be counted.
func TestOpenConnsRace(t *testing.T) {
	var o openConns
	held := o.open("web/a")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50000 {
				closed := o.open("web/b")
				if o.counts()["web/b"] < 1 {
					t.Error("an open connection is not counted")
				}
				closed()
			}
		})
	}
	for range 2000 {
		if o.counts()["web/a"] != 1 {
			t.Fatal("a held connection is not counted")
		}
	}
	wg.Wait()
	held()
	if c := o.counts(); len(c) != 0 {
		t.Fatalf("counts after every close: %v", c)
	}
	// Reopening after the counter retired counts again.
	closeB := o.open("web/b")
	if o.counts()["web/b"] != 1 {
		t.Fatal("a connection opened after a retirement is not counted")
	}
	closeB()
}
