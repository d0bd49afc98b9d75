package checks

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// write is a state to store for an instance.
type write struct {
	it     *inst
	in     *catalog.Instance // the instance as the snapshot showed it
	from   string
	state  string
	output string
}

// written is the outcome of a write.
type written struct {
	write
	rev     int64
	applied bool // false: the instance left or changed lease first
	err     error
}

// evaluate computes it's state from its checks and, when it differs from
// what the catalog shows, queues a write — unless one is under way or the
// snapshot has not yet caught up with the last one.
func (l *loop) evaluate(it *inst) {
	if it.writing || len(it.targets) == 0 {
		return
	}
	state, output := worst(it.targets)
	from := shown(it.in)
	if state == from {
		return
	}
	if it.wrote == state && l.snap.Revision() < it.wroteRev {
		return
	}
	select {
	case l.writes <- write{it: it, in: it.in, from: from, state: state, output: output}:
		it.writing = true
	default: // full: the next probe result asks again
	}
}

// settle records the outcome of a write.
func (l *loop) settle(w written) {
	it := w.it
	it.writing = false
	m := l.c.metrics
	switch {
	case w.err != nil:
		l.c.writeFails.Add(1)
		m.writes.WithLabelValues("failed").Inc()
		l.c.log.Debug("health checks: writing a state failed; writing it after the next probe",
			"service", w.in.Service, "id", w.in.ID, "state", w.state, "err", w.err)
	case !w.applied:
		m.writes.WithLabelValues("gone").Inc()
	default:
		it.wrote, it.wroteRev = w.state, w.rev
		l.c.writes.Add(1)
		l.c.changes.Add(1)
		m.writes.WithLabelValues("ok").Inc()
		m.changes.WithLabelValues(w.state).Inc()
		l.c.log.Info("instance state changed", "service", w.in.Service, "id", w.in.ID,
			"from", w.from, "to", w.state, "output", w.output)
	}
}

// writer stores states until ctx ends. Each write is one transaction
// that applies only while the instance key holds the lease the snapshot
// showed: passing deletes the health key (absent is passing); warning and
// critical put it under the instance's lease, so it leaves with the
// instance.
func (c *Checker) writer(ctx context.Context, in <-chan write, out chan<- written) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-in:
			rev, applied, err := c.store(ctx, w)
			out <- written{write: w, rev: rev, applied: applied, err: err}
		}
	}
}

func (c *Checker) store(ctx context.Context, w write) (rev int64, applied bool, err error) {
	ks := c.cfg.Keyspace
	hk := ks.HealthKey(w.in.Service, w.in.ID)
	op := clientv3.OpDelete(hk)
	if w.state != catalog.StatePassing {
		val, err := catalog.EncodeHealth(&catalog.Health{State: w.state, Output: w.output, Since: time.Now().UTC(), By: c.cfg.MemberID})
		if err != nil {
			return 0, false, err
		}
		op = clientv3.OpPut(hk, string(val), clientv3.WithLease(clientv3.LeaseID(w.in.Lease)))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.EtcdTimeout)
	defer cancel()
	resp, err := c.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(ks.InstanceKey(w.in.Service, w.in.ID)), "=", clientv3.LeaseID(w.in.Lease))).
		Then(op).Commit()
	if err != nil {
		return 0, false, err
	}
	return resp.Header.Revision, resp.Succeeded, nil
}
