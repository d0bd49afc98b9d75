package registrar

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errRenewerClosed is returned by renew after close.
var errRenewerClosed = errors.New("lease renewer closed")

// renewer renews leases on one long-lived LeaseKeepAlive stream shared by
// every heartbeat. Requests are pipelined: a heartbeat queues its lease and
// waits for the answer, without a round trip of its own to set up a stream
// (as clientv3's KeepAliveOnce does) and without renewing forever (as
// clientv3's KeepAlive does). Heartbeats of one lease that arrive while a
// renewal of it is under way, or within cacheFor of the last, share it: a
// lease has at most one unanswered renewal, so what the renewer holds is
// bounded by the number of leases, however long etcd is away. When the
// stream breaks it is opened again and unanswered requests are sent again,
// along with a renewal of every lease renewed within its TTL: after etcd
// comes back from a freeze or a leader change, each lease is renewed at
// once rather than at its next heartbeat. A heartbeat waits at most for its
// own context.
type renewer struct {
	lc       pb.LeaseClient
	log      *slog.Logger
	metrics  *metrics
	cacheFor time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu sync.Mutex
	// pending holds, per lease, the renewal asked for and not yet answered.
	pending map[int64]*renewal
	// queue holds the leases of renewals not yet sent on the current stream.
	queue []int64
	// recent holds the last answered renewal of each lease for cacheFor.
	recent map[int64]*renewal
	// live holds, per lease renewed within its TTL, when that TTL ends.
	live   map[int64]time.Time
	opened int // streams opened
	closed bool
}

// renewal is one keep-alive request and its answer.
type renewal struct {
	at   time.Time // when it was asked for: the lease lives at least TTL from here
	done chan struct{}
	ttl  int64 // seconds; <= 0: the lease is gone
	err  error
}

func newRenewer(ctx context.Context, lc pb.LeaseClient, log *slog.Logger, m *metrics, cacheFor time.Duration) *renewer {
	ctx, cancel := context.WithCancel(ctx)
	rn := &renewer{
		lc:       lc,
		log:      log,
		metrics:  m,
		cacheFor: cacheFor,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		pending:  map[int64]*renewal{},
		recent:   map[int64]*renewal{},
		live:     map[int64]time.Time{},
	}
	go rn.run()
	return rn
}

// renew renews lease and returns its new TTL in seconds (<= 0 when the lease
// no longer exists) and whether the answer came from a renewal made within
// cacheFor.
func (rn *renewer) renew(ctx context.Context, lease int64) (ttl int64, cached bool, err error) {
	now := time.Now()
	rn.mu.Lock()
	if rn.closed {
		rn.mu.Unlock()
		return 0, false, errRenewerClosed
	}
	if r := rn.recent[lease]; r != nil && now.Sub(r.at) < rn.cacheFor {
		rn.mu.Unlock()
		return r.ttl, true, nil
	}
	// Join the renewal under way, however old: etcd renews a lease when it
	// processes the request, which is after this heartbeat arrived.
	r := rn.pending[lease]
	if r == nil {
		r = &renewal{at: now, done: make(chan struct{})}
		rn.pending[lease] = r
		rn.queue = append(rn.queue, lease)
		select {
		case rn.wake <- struct{}{}:
		default:
		}
	}
	rn.mu.Unlock()
	select {
	case <-r.done:
		return r.ttl, false, r.err
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

// close stops the renewer and fails the renewals waiting.
func (rn *renewer) close() {
	rn.cancel()
	<-rn.done
}

func (rn *renewer) run() {
	defer close(rn.done)
	defer rn.failAll(errRenewerClosed)
	backoff := 50 * time.Millisecond
	for rn.ctx.Err() == nil {
		start := time.Now()
		err := rn.stream()
		if rn.ctx.Err() != nil {
			return
		}
		if time.Since(start) > 5*time.Second {
			backoff = 50 * time.Millisecond
		}
		rn.log.Warn("lease keep-alive stream ended; opening another", "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-rn.ctx.Done():
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// stream runs one keep-alive stream until it fails.
func (rn *renewer) stream() error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(rn.ctx))
	defer cancel()
	ks, err := rn.lc.LeaseKeepAlive(ctx)
	if err != nil {
		return err
	}
	rn.metrics.renewStreams.Inc()

	// Everything unanswered is sent again on the new stream; after a
	// break, every live lease is renewed at once.
	rn.mu.Lock()
	rn.queue = rn.queue[:0]
	if rn.opened++; rn.opened > 1 {
		now := time.Now()
		for lease, until := range rn.live {
			if until.After(now) && rn.pending[lease] == nil {
				rn.pending[lease] = &renewal{at: now, done: make(chan struct{})}
			}
		}
	}
	for lease := range rn.pending {
		rn.queue = append(rn.queue, lease)
	}
	rn.mu.Unlock()

	recvErr := make(chan error, 1)
	go func() {
		for {
			resp, err := ks.Recv()
			if err != nil {
				recvErr <- err
				cancel()
				return
			}
			rn.answer(resp)
		}
	}()

	prune := time.NewTicker(time.Second)
	defer prune.Stop()
	var batch []int64
	for {
		rn.mu.Lock()
		batch = append(batch[:0], rn.queue...)
		rn.queue = rn.queue[:0]
		rn.mu.Unlock()
		for _, lease := range batch {
			if err := ks.Send(&pb.LeaseKeepAliveRequest{ID: lease}); err != nil {
				cancel()
				<-recvErr
				return err
			}
		}
		rn.metrics.renewRequests.Add(float64(len(batch)))
		select {
		case <-rn.wake:
		case <-prune.C:
			rn.prune()
		case err := <-recvErr:
			return err
		}
	}
}

// answer resolves the pending renewal of the response's lease.
func (rn *renewer) answer(resp *pb.LeaseKeepAliveResponse) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	r := rn.pending[resp.ID]
	if r == nil {
		return // asked for again on a later stream and answered there
	}
	delete(rn.pending, resp.ID)
	r.ttl = resp.TTL
	close(r.done)
	if resp.TTL > 0 {
		rn.live[resp.ID] = r.at.Add(time.Duration(resp.TTL) * time.Second)
	} else {
		delete(rn.live, resp.ID)
	}
	if rn.cacheFor > 0 {
		rn.recent[resp.ID] = r
	}
}

// forget drops the cached answer of lease, once it has been revoked, so no
// heartbeat is answered from a renewal of a lease that is gone.
func (rn *renewer) forget(lease int64) {
	rn.mu.Lock()
	delete(rn.recent, lease)
	delete(rn.live, lease)
	rn.mu.Unlock()
}

// prune forgets answers older than cacheFor and leases past their TTL.
func (rn *renewer) prune() {
	now := time.Now()
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for lease, r := range rn.recent {
		if now.Sub(r.at) >= rn.cacheFor {
			delete(rn.recent, lease)
		}
	}
	for lease, until := range rn.live {
		if now.After(until) {
			delete(rn.live, lease)
		}
	}
}

func (rn *renewer) failAll(err error) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.closed = true
	for lease, r := range rn.pending {
		r.err = err
		close(r.done)
		delete(rn.pending, lease)
	}
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound)
}
