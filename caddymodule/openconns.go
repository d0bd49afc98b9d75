package caddymodule

import (
	"sync"
	"sync/atomic"
)

// openConns counts, per instance ("<service>/<id>"), the connections the
// VIP and layer-4 proxies hold open to it and the HTTP requests in flight
// to it: what the app's reader report says, so that a drain can wait for
// an instance's last connection to close.
type openConns struct {
	m sync.Map // instance key -> *atomic.Int64
}

// open counts one more for key and returns the func that counts it closed.
// A counter that falls to zero is retired (-1) and forgotten, so instances
// that come and go do not grow the map; an open that finds a retired
// counter starts a fresh one, so no connection is ever counted on a
// forgotten counter.
func (o *openConns) open(key string) (closed func()) {
	for {
		v, ok := o.m.Load(key)
		if !ok {
			v, _ = o.m.LoadOrStore(key, new(atomic.Int64))
		}
		n := v.(*atomic.Int64)
		for c := n.Load(); c >= 0; c = n.Load() {
			if n.CompareAndSwap(c, c+1) {
				return func() {
					if n.Add(-1) == 0 && n.CompareAndSwap(0, -1) {
						o.m.CompareAndDelete(key, n)
					}
				}
			}
		}
		o.m.CompareAndDelete(key, n) // retired: help forget it, then retry
	}
}

// counts returns the non-zero counts.
func (o *openConns) counts() map[string]int {
	out := map[string]int{}
	o.m.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Load(); n > 0 {
			out[k.(string)] = int(n)
		}
		return true
	})
	return out
}
