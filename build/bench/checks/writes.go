package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// writes counts etcd's writes in a window: every revision etcd made
// (each write transaction makes one), and — from a watch of every key —
// the health keys put and deleted and the other keys changed.
type writes struct {
	Revisions             int64
	HealthPuts, HealthDel int
	Other                 int
}

// Health returns the writes to health keys.
func (w writes) Health() int { return w.HealthPuts + w.HealthDel }

// writeWatch watches every key of etcd from a revision on.
type writeWatch struct {
	cli    *clientv3.Client
	from   int64
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seen int64 // the last revision the watch has shown
	n    writes
	err  error
}

// revision returns etcd's current revision.
func revision(ctx context.Context, cli *clientv3.Client) (int64, error) {
	resp, err := cli.Get(ctx, "/bench-revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// watchWrites starts counting the writes after etcd's current revision.
func watchWrites(ctx context.Context, cli *clientv3.Client) (*writeWatch, error) {
	rev, err := revision(ctx, cli)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &writeWatch{cli: cli, from: rev, seen: rev, cancel: cancel, done: make(chan struct{})}
	ch := cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	go func() {
		defer close(w.done)
		for resp := range ch {
			w.mu.Lock()
			if err := resp.Err(); err != nil && w.err == nil {
				w.err = err
			}
			for _, ev := range resp.Events {
				k, ok := ks.ParseKey(string(ev.Kv.Key))
				switch {
				case ok && k.Kind == catalog.KindHealth && ev.Type == mvccpb.PUT:
					w.n.HealthPuts++
				case ok && k.Kind == catalog.KindHealth:
					w.n.HealthDel++
				default:
					w.n.Other++
				}
				w.seen = max(w.seen, ev.Kv.ModRevision)
			}
			if resp.IsProgressNotify() {
				w.seen = max(w.seen, resp.Header.Revision)
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// counts returns the writes so far: it reads etcd's revision and waits
// until the watch has shown every write up to it.
func (w *writeWatch) counts(ctx context.Context) (writes, error) {
	rev, err := revision(ctx, w.cli)
	if err != nil {
		return writes{}, err
	}
	var n writes
	err = waitFor(ctx, 10*time.Second, "the watch to catch up", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		n = w.n
		return w.seen >= rev || w.err != nil
	})
	w.mu.Lock()
	werr := w.err
	w.mu.Unlock()
	if werr != nil {
		return n, fmt.Errorf("watch: %w", werr)
	}
	n.Revisions = rev - w.from
	return n, err
}

// stop ends the watch.
func (w *writeWatch) stop() {
	w.cancel()
	<-w.done
}

// peek returns the writes the watch has shown so far.
func (w *writeWatch) peek() writes {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
