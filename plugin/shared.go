package netsel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// sharedIndex is one etcd client and one catalog.Index, shared by every
// netsel block with the same indexConfig in the process, and counted so the
// last block to shut down stops it. A reload starts the new blocks before it
// shuts down the old ones, so the index and its state survive a reload.
type sharedIndex struct {
	key    string
	labels indexLabels
	client *clientv3.Client
	ix     *catalog.Index
	cancel context.CancelFunc
	done   chan struct{}
	refs   int // guarded by indexes.mu
	// ttl is the longest answer TTL (seconds) of the blocks using the
	// index, which its reader key reports.
	ttl atomic.Uint32
}

// noteTTL records that a block answers with ttl (seconds).
func (s *sharedIndex) noteTTL(ttl uint32) {
	for {
		cur := s.ttl.Load()
		if ttl <= cur || s.ttl.CompareAndSwap(cur, ttl) {
			return
		}
	}
}

// indexLabels label the metrics of one index.
type indexLabels struct{ endpoints, prefix string }

var indexes = struct {
	mu sync.Mutex
	m  map[string]*sharedIndex
}{m: map[string]*sharedIndex{}}

func (cfg indexConfig) key() string {
	return strings.Join([]string{strings.Join(cfg.Endpoints, ","), cfg.Prefix, cfg.Username, cfg.Password, cfg.TLSArgs}, "\x00")
}

// acquireIndex returns the running index for cfg, starting it if needed.
func acquireIndex(cfg indexConfig) (*sharedIndex, error) {
	indexes.mu.Lock()
	defer indexes.mu.Unlock()
	k := cfg.key()
	if s, ok := indexes.m[k]; ok {
		s.refs++
		return s, nil
	}
	ks, err := catalog.NewKeyspace(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		TLS:       cfg.TLS,
		Username:  cfg.Username,
		Password:  cfg.Password,
		// Notice a member that stopped answering (its host lost or cut
		// off) within seconds, and send to the others: etcd refuses
		// pings more often than every 5s.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", cfg.Endpoints, err)
	}
	ix := catalog.NewIndex(client, ks, catalog.IndexOptions{Logf: log.Warningf})
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharedIndex{
		key:    k,
		labels: indexLabels{endpoints: strings.Join(cfg.Endpoints, ","), prefix: cfg.Prefix},
		client: client,
		ix:     ix,
		cancel: cancel,
		done:   make(chan struct{}),
		refs:   1,
	}
	// The reader key says which revision this CoreDNS serves, so that a
	// drain can wait until it has stopped answering with the instance.
	rep := catalog.NewReporter(client, ix, catalog.ReporterOptions{Kind: catalog.ReaderDNS, Logf: log.Warningf,
		AnswerTTL: func() time.Duration { return time.Duration(s.ttl.Load()) * time.Second }})
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		wg.Go(func() { rep.Run(ctx) })
		ix.Run(ctx)
		wg.Wait()
	}()
	indexes.m[k] = s
	log.Infof("watching %s on %s", cfg.Prefix, strings.Join(cfg.Endpoints, ","))
	return s, nil
}

// release drops one reference and stops the index with the last one.
func (s *sharedIndex) release() {
	indexes.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(indexes.m, s.key)
	}
	indexes.mu.Unlock()
	if !last {
		return
	}
	s.cancel()
	<-s.done
	s.client.Close()
}

// eachIndex calls f for every running index.
func eachIndex(f func(*sharedIndex)) {
	indexes.mu.Lock()
	defer indexes.mu.Unlock()
	for _, s := range indexes.m {
		f(s)
	}
}
