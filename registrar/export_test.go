package registrar

import (
	"context"
	"time"
)

// RenewForTest renews lease through the registrar's shared keep-alive
// stream, for benchmarks that leave HTTP out.
func (r *Registrar) RenewForTest(ctx context.Context, lease int64) (int64, error) {
	ttl, _, err := r.renewer.renew(ctx, lease)
	return ttl, err
}

// RenewerBacklogForTest returns how many renewals the registrar's renewer
// holds unanswered and how many it has queued to send.
func (r *Registrar) RenewerBacklogForTest() (pending, queued int) {
	r.renewer.mu.Lock()
	defer r.renewer.mu.Unlock()
	return len(r.renewer.pending), len(r.renewer.queue)
}

// MissedForTest notes that etcd did not answer a heartbeat of name/id just
// now, as when etcd is frozen: the instance may be put back if its lease
// is found gone.
func (r *Registrar) MissedForTest(name, id string) {
	_, in := r.indexed(name, id)
	r.seen.missed(name, id, in, time.Now())
}
