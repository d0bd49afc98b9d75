package catalog

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	errBadKey       = errors.New("key is not in the netsel layout")
	errNameMismatch = errors.New("value names a different service or id than its key")
	errNoLease      = errors.New("key has no lease")
)

// IndexOptions tune an Index. The zero value is usable.
type IndexOptions struct {
	// Logf receives one line per notable event: a skipped value, a re-list
	// and why. Defaults to log.Printf.
	Logf func(format string, args ...any)
	// PageSize is the number of keys read per range request while listing.
	// Defaults to 5000.
	PageSize int64
	// RequestTimeout bounds each range request. Defaults to 15 s.
	RequestTimeout time.Duration
	// MaxBackoff caps the wait between failed attempts to list. Defaults
	// to 500 ms: a reader cut off from etcd's majority serves its last
	// good state, and catches up within that of the majority's return.
	MaxBackoff time.Duration
	// MinPublishInterval is the least time between two snapshots while
	// changes stream in; the first change after a quiet spell is published
	// at once. Defaults to 2 ms.
	MinPublishInterval time.Duration
}

// Stats are counters of an Index since it was made.
type Stats struct {
	Revision int64 // revision of the current snapshot
	Events   int64 // etcd events applied
	Skipped  int64 // values or keys skipped because they did not decode
	Relists  int64 // full re-reads of the keyspace after the first
	Failures int64 // failed attempts to list or watch
}

// Index is a watch-fed, in-memory copy of the keyspace. Lookups go through
// Snapshot, which never touches etcd and never blocks. Run keeps it current:
// an initial paged range read at revision R, then a watch from R+1, and a new
// read (diffed against what is held, so unchanged entries keep their
// pointers) whenever the watch is compacted, cut or loses its leader. While
// etcd is away the last snapshot stays in place.
type Index struct {
	client *clientv3.Client
	ks     Keyspace
	opts   IndexOptions

	snap    atomic.Pointer[Snapshot]
	running atomic.Bool

	events, skipped, relists, failures atomic.Int64

	syncedOnce sync.Once
	synced     chan struct{}

	watches serviceWatches
}

// NewIndex returns an Index of keyspace ks read through client. Call Run to
// fill it.
func NewIndex(client *clientv3.Client, ks Keyspace, opts IndexOptions) *Index {
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 5000
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 15 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 500 * time.Millisecond
	}
	if opts.MinPublishInterval <= 0 {
		opts.MinPublishInterval = 2 * time.Millisecond
	}
	ix := &Index{client: client, ks: ks, opts: opts, synced: make(chan struct{})}
	ix.snap.Store(newSnapshot())
	return ix
}

// Keyspace returns the keyspace the index reads.
func (ix *Index) Keyspace() Keyspace { return ix.ks }

// Snapshot returns the current snapshot. It never blocks.
func (ix *Index) Snapshot() *Snapshot { return ix.snap.Load() }

// Synced returns a channel closed once the first full read has completed.
func (ix *Index) Synced() <-chan struct{} { return ix.synced }

// WaitSynced waits until the first full read has completed or ctx ends.
func (ix *Index) WaitSynced(ctx context.Context) error {
	select {
	case <-ix.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("catalog index not synced: %w", ctx.Err())
	}
}

// WaitRevision waits until the index has applied revision rev or later.
// Revisions that touched no key of the keyspace are not seen by the watch,
// so callers pass revisions of writes to the keyspace.
func (ix *Index) WaitRevision(ctx context.Context, rev int64) (*Snapshot, error) {
	for {
		s := ix.Snapshot()
		if s.synced && s.revision >= rev {
			return s, nil
		}
		select {
		case <-s.Stale():
		case <-ctx.Done():
			return s, fmt.Errorf("catalog index at revision %d, waiting for %d: %w", s.revision, rev, ctx.Err())
		}
	}
}

// Stats returns the index's counters.
func (ix *Index) Stats() Stats {
	return Stats{
		Revision: ix.Snapshot().revision,
		Events:   ix.events.Load(),
		Skipped:  ix.skipped.Load(),
		Relists:  ix.relists.Load(),
		Failures: ix.failures.Load(),
	}
}

// maxWatchBackoff caps the wait after a watch that failed at once, before
// listing again: a persistent watch fault (the list succeeds, the watch
// does not) must not become two full lists a second on every reader.
const maxWatchBackoff = 5 * time.Second

// Run keeps the index current until ctx ends, then returns nil. It returns an
// error only when called twice on one Index.
func (ix *Index) Run(ctx context.Context) error {
	if !ix.running.CompareAndSwap(false, true) {
		return errors.New("catalog: Index.Run called twice")
	}
	defer ix.running.Store(false)
	st := newState(ix.ks, ix.skip)
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; {
		rev, err := ix.list(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			ix.failures.Add(1)
			ix.opts.Logf("netsel catalog: listing %s failed, retrying in %v (serving the last good state): %v", ix.ks.Prefix(), backoff, err)
			sleep(ctx, backoff)
			backoff = min(backoff*2, ix.opts.MaxBackoff)
			continue
		}
		if !first {
			ix.relists.Add(1)
		}
		first = false
		ix.publish(st, rev, true)
		ix.syncedOnce.Do(func() { close(ix.synced) })

		watched := time.Now()
		err = ix.watch(ctx, st, rev)
		if ctx.Err() != nil {
			return nil
		}
		ix.failures.Add(1)
		ix.opts.Logf("netsel catalog: watch of %s from revision %d ended, re-listing: %v", ix.ks.Prefix(), rev+1, err)
		if errors.Is(err, rpctypes.ErrCompacted) {
			continue // the data is there; re-list at once
		}
		// A watch that lasted a while was healthy: start backing off
		// afresh. One that failed at once backs off further, so a
		// persistent fault does not become a loop of full re-lists.
		if time.Since(watched) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		sleep(ctx, backoff)
		backoff = min(backoff*2, max(ix.opts.MaxBackoff, maxWatchBackoff))
	}
	return nil
}

func (ix *Index) skip(key string, err error) {
	ix.skipped.Add(1)
	ix.opts.Logf("netsel catalog: skipping %s: %v", key, err)
}

// list reads the whole keyspace, page by page, at one revision into a fresh
// state that replaces st's contents. It returns the revision read.
func (ix *Index) list(ctx context.Context, st *state) (int64, error) {
	fresh := newState(ix.ks, ix.skip)
	prefix := ix.ks.Prefix()
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(ix.opts.PageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, ix.opts.RequestTimeout)
		resp, err := ix.client.Get(rctx, key, opts...)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("range %s: %w", key, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fresh.apply(kv, false, kv.ModRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	st.services = fresh.services
	st.members = fresh.members
	return rev, nil
}

// watch applies events from revision rev+1 until the watch fails or ctx
// ends. The first change after a quiet spell is published at once; during a
// burst, snapshots are published at most every MinPublishInterval — or 20
// times what the last publish took, when that is longer, up to
// maxPublishInterval — each folding in every event since the last. A flood
// of changes to large services thus costs a bounded share of a CPU, not one
// copy per event, and one publish slowed down (by a starved CPU, say)
// cannot hold later changes back for long.
func (ix *Index) watch(ctx context.Context, st *state, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := ix.client.Watch(wctx, ix.ks.Prefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	var (
		lastPublish time.Time
		interval    = ix.opts.MinPublishInterval
		timer       = time.NewTimer(time.Hour)
		timerC      <-chan time.Time // non-nil while a publish is scheduled
	)
	timer.Stop()
	defer timer.Stop()
	flush := func() {
		if st.pending() {
			start := time.Now()
			ix.publish(st, rev, false)
			lastPublish = time.Now()
			interval = max(ix.opts.MinPublishInterval, min(20*lastPublish.Sub(start), maxPublishInterval))
		}
	}
	for {
		select {
		case wr, ok := <-wch:
			if !ok {
				flush()
				return errors.New("watch channel closed")
			}
			if err := wr.Err(); err != nil {
				flush()
				return err
			}
			for _, ev := range wr.Events {
				ix.events.Add(1)
				st.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete, ev.Kv.ModRevision)
			}
			if wr.Header.Revision > rev {
				rev = wr.Header.Revision
			}
			if !st.pending() || timerC != nil {
				continue
			}
			if wait := interval - time.Since(lastPublish); wait > 0 {
				timer.Reset(wait)
				timerC = timer.C
				continue
			}
			flush()
		case <-timerC:
			timerC = nil
			flush()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// maxPublishInterval caps how long the watch defers a snapshot because the
// last publish was slow: a change is never served later than this (plus
// the publish itself) after it arrived.
const maxPublishInterval = 100 * time.Millisecond

func (ix *Index) publish(st *state, rev int64, full bool) {
	prev := ix.snap.Load()
	var dirty []string
	if !full {
		dirty = make([]string, 0, len(st.dirty))
		for name := range st.dirty {
			dirty = append(dirty, name)
		}
	}
	next := st.publish(prev, rev, full)
	ix.snap.Store(next)
	close(prev.next)
	ix.watches.notify(prev, next, dirty, full)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
