package catalog

import "sync"

// serviceWatches are the channels of WatchService, by service name. A
// publish closes the channels of the services it changed, and only those:
// a reader waiting on one service wakes for that service alone, however
// many others change.
type serviceWatches struct {
	mu sync.Mutex
	m  map[string]*serviceWatch
}

// serviceWatch is the channel the watchers of one service share until the
// service changes.
type serviceWatch struct {
	ch    chan struct{}
	users int
}

// WatchService returns a channel that is closed once a snapshot published
// after the call changes the entry of service name (it appears, changes or
// disappears), and a stop function that must be called when the caller no
// longer waits. A snapshot taken after WatchService returns never misses a
// change the channel does not report:
//
//	changed, stop := ix.WatchService(name)
//	defer stop()
//	if s := ix.Snapshot(); done(s) { return s }
//	<-changed
//
// Watchers of one service share a channel: the cost is a map entry per
// watched service, not per watcher.
func (ix *Index) WatchService(name string) (changed <-chan struct{}, stop func()) {
	w := &ix.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]*serviceWatch{}
	}
	sw := w.m[name]
	if sw == nil {
		sw = &serviceWatch{ch: make(chan struct{})}
		w.m[name] = sw
	}
	sw.users++
	var once sync.Once
	return sw.ch, func() { once.Do(func() { w.release(name, sw) }) }
}

// release drops one user of sw; the last one removes it from the map,
// unless a change already closed and removed it.
func (w *serviceWatches) release(name string, sw *serviceWatch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sw.users--
	if sw.users == 0 && w.m[name] == sw {
		delete(w.m, name)
	}
}

// notify closes the channels of the watched services whose entries differ
// between prev and next: of the services named in dirty, or, after a full
// read (dirty nil), of every watched service. It is called after next is
// stored, so that a watcher woken sees it.
func (w *serviceWatches) notify(prev, next *Snapshot, dirty []string, full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) == 0 {
		return
	}
	wake := func(name string, sw *serviceWatch) {
		if prev.services[name] != next.services[name] {
			close(sw.ch)
			delete(w.m, name)
		}
	}
	if full || len(dirty) > len(w.m) {
		for name, sw := range w.m {
			wake(name, sw)
		}
		return
	}
	for _, name := range dirty {
		if sw, ok := w.m[name]; ok {
			wake(name, sw)
		}
	}
}
