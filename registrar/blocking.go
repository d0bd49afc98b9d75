package registrar

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/netsel/netsel/catalog"
)

// blockingQuery is the ?index=N&wait=D of a read, as Consul's blocking
// queries: answer once what was asked for has changed after index N (an
// etcd revision), or after D (default 5m, at most 10m, plus up to D/16 of
// jitter so that many waiters do not return at once).
type blockingQuery struct {
	blocking bool
	index    int64
	wait     time.Duration
}

func parseBlocking(req *http.Request) (blockingQuery, error) {
	q := req.URL.Query()
	if !q.Has("index") {
		if q.Has("wait") {
			return blockingQuery{}, errBadRequest("wait", "wait needs index")
		}
		return blockingQuery{}, nil
	}
	bq := blockingQuery{blocking: true, wait: DefaultBlockingWait}
	n, err := strconv.ParseInt(q.Get("index"), 10, 64)
	if err != nil || n < 0 {
		return bq, errBadRequest("index", "%q is not a non-negative integer", truncate(q.Get("index"), 40))
	}
	bq.index = n
	if s := q.Get("wait"); s != "" {
		if bq.wait, err = parseWait(s); err != nil {
			return bq, err
		}
	}
	// Jitter spreads the wake-ups of many clients; it never takes a wait
	// past MaxBlockingWait, which the server's deadlines are sized for.
	bq.wait = min(bq.wait+rand.N(bq.wait/16+1), MaxBlockingWait)
	return bq, nil
}

// parseWait reads the wait of a blocking query: a duration ("30s") or
// whole seconds, positive, at most MaxBlockingWait.
func parseWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, serr := strconv.Atoi(s)
		if serr != nil {
			return 0, errBadRequest("wait", "%q is not a duration such as \"30s\"", truncate(s, 40))
		}
		d = time.Duration(secs) * time.Second
	}
	if d <= 0 {
		return 0, errBadRequest("wait", "%q is not positive", s)
	}
	return min(d, MaxBlockingWait), nil
}

// waitService waits until service name has changed after q.index: its entry
// has a newer revision, it appeared, or it disappeared. It returns the entry
// (nil when absent) and the index to pass next. It wakes only for changes to
// that service (catalog.Index.WatchService), never for the others.
func (r *Registrar) waitService(ctx context.Context, name string, q blockingQuery) (*catalog.Entry, int64) {
	snap := r.ix.Snapshot()
	e, idx := serviceAt(snap, name)
	if snap.Synced() && idx > q.index {
		return e, idx // changed already (or absent since before index)
	}
	present := e != nil
	watch := func() (<-chan struct{}, func()) { return r.ix.WatchService(name) }
	final := r.block(ctx, q.wait, watch, func(s *catalog.Snapshot) bool {
		e, ok := s.Service(name)
		return ok && e.ModRevision > q.index || !ok && present
	})
	return serviceAt(final, name)
}

// waitList waits until any service has changed after q.index.
func (r *Registrar) waitList(ctx context.Context, q blockingQuery) *catalog.Snapshot {
	snap := r.ix.Snapshot()
	if snap.Synced() && snap.Revision() > q.index {
		return snap
	}
	watch := func() (<-chan struct{}, func()) { return r.ix.Snapshot().Stale(), func() {} }
	return r.block(ctx, q.wait, watch, func(s *catalog.Snapshot) bool { return s.Revision() > q.index })
}

// block waits for a synced snapshot for which changed is true, for wait,
// for ctx or for the server to shut down, and returns the latest snapshot.
// watch returns the channel that wakes it (and the function that stops
// watching): it is taken before each look at the snapshot, so no change
// between the look and the wait is missed.
func (r *Registrar) block(ctx context.Context, wait time.Duration, watch func() (<-chan struct{}, func()), changed func(*catalog.Snapshot) bool) *catalog.Snapshot {
	r.metrics.blockingActive.Inc()
	defer r.metrics.blockingActive.Dec()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	drain := draining(ctx)
	for {
		wake, stop := watch()
		snap := r.ix.Snapshot()
		if snap.Synced() && changed(snap) {
			stop()
			return snap
		}
		select {
		case <-wake:
			stop()
			r.metrics.blockingWakeups.Inc()
			continue
		case <-timer.C:
		case <-ctx.Done():
		case <-drain:
		}
		stop()
		return r.ix.Snapshot()
	}
}
