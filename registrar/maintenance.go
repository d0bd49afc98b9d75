package registrar

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// putMaintenance serves PUT /v1/services/{name}/instances/{id}/maintenance:
// it takes the instance out of rotation (DNS, both proxies, the default
// listing) without deregistering it, by putting its maintenance key under
// its lease. The body {"reason": "..."} is optional (at most 256 bytes of
// UTF-8, no control characters). Putting it again
// replaces the reason and keeps the time it began. 204; 404 when there is
// no such instance.
func (r *Registrar) putMaintenance(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	var body api.MaintenanceRequest
	if req.ContentLength != 0 {
		if err := decodeBody(w, req, &body); err != nil {
			return err
		}
	}
	if len(body.Reason) > catalog.MaxReasonLength {
		return errBadRequest("reason", "the reason has %d bytes, more than %d", len(body.Reason), catalog.MaxReasonLength)
	}
	if !utf8.ValidString(body.Reason) {
		return errBadRequest("reason", "the reason is not valid UTF-8")
	}
	if i := strings.IndexFunc(body.Reason, unicode.IsControl); i >= 0 {
		return errBadRequest("reason", "the reason holds a control character at byte %d", i)
	}
	now := time.Now()
	_, _, err = r.markInstance(req.Context(), name, id, r.ks.MaintenanceKey(name, id), func(prev []byte) ([]byte, error) {
		m := &catalog.Maintenance{Reason: body.Reason, Since: now}
		if old, err := catalog.DecodeMaintenance(prev); prev != nil && err == nil {
			m.Since = old.Since
		}
		return catalog.EncodeMaintenance(m)
	})
	if err != nil {
		return err
	}
	r.log.Info("maintenance on", "service", name, "id", id, "reason", body.Reason)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteMaintenance serves DELETE
// /v1/services/{name}/instances/{id}/maintenance: the instance takes
// traffic again (unless it is draining or critical). 204, also when it was
// not in maintenance; 404 when there is no such instance.
func (r *Registrar) deleteMaintenance(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	if err := r.unmarkInstance(req.Context(), name, id, r.ks.MaintenanceKey(name, id)); err != nil {
		return err
	}
	r.log.Info("maintenance off", "service", name, "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// markInstance puts key, beside instance name/id, under the instance's
// lease, in a transaction that checks the instance is on that lease and key
// still holds what value was given. value makes the new value from the
// stored one (nil when key is absent). The first attempt trusts the index;
// when it is behind, the transaction fails and the next attempt uses what
// etcd answered. It returns the revision of the write and the lease it
// put key under; a 404 when the instance does not exist.
func (r *Registrar) markInstance(ctx context.Context, name, id, key string, value func(prev []byte) ([]byte, error)) (rev, lease int64, err error) {
	instKey := r.ks.InstanceKey(name, id)
	snap := r.ix.Snapshot()
	var (
		prev []byte
		// keyCmps hold while key holds prev.
		keyCmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	)
	if e, ok := snap.Service(name); ok {
		if in, ok := e.Instance(id); ok {
			lease = in.Lease
			var (
				v   []byte
				err error
			)
			switch {
			case key == r.ks.MaintenanceKey(name, id) && in.Maintenance != nil:
				v, err = catalog.EncodeMaintenance(in.Maintenance)
			case key == r.ks.DrainKey(name, id) && in.Drain != nil:
				v, err = catalog.EncodeDrain(in.Drain)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("encode %s: %w", key, err)
			}
			if v != nil {
				// Present now, and unchanged since snap.
				prev, keyCmps = v, []clientv3.Cmp{
					clientv3.Compare(clientv3.ModRevision(key), ">", 0),
					clientv3.Compare(clientv3.ModRevision(key), "<", snap.Revision()+1),
				}
			}
		}
	}
	for range maxTxnAttempts {
		val, err := value(prev)
		if err != nil {
			return 0, 0, fmt.Errorf("encode %s: %w", key, err)
		}
		cmps := append([]clientv3.Cmp{
			clientv3.Compare(clientv3.LeaseValue(instKey), "=", lease),
			clientv3.Compare(clientv3.CreateRevision(instKey), ">", 0),
		}, keyCmps...)
		resp, err := r.commitElse(ctx, cmps,
			[]clientv3.Op{clientv3.OpPut(key, string(val), clientv3.WithLease(clientv3.LeaseID(lease)))},
			[]clientv3.Op{clientv3.OpGet(instKey), clientv3.OpGet(key)})
		if err != nil {
			return 0, 0, etcdUnavailable("mark instance", err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, lease, nil
		}
		inst := resp.Responses[0].GetResponseRange().Kvs
		if len(inst) == 0 {
			return 0, 0, errNotFound("instance %s of service %s is not registered", id, name)
		}
		// The index is behind: take the instance's lease and the key's
		// value from etcd's answer.
		lease = inst[0].Lease
		prev, keyCmps = nil, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			keyCmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)}
			if kvs[0].Lease == lease {
				prev = kvs[0].Value // a key of an earlier lease says nothing of this one
			}
		}
	}
	return 0, 0, &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
		msg: fmt.Sprintf("instance %s of service %s kept changing; try again", id, name)}
}

// unmarkInstance deletes key, beside instance name/id; a 404 when the
// instance does not exist.
func (r *Registrar) unmarkInstance(ctx context.Context, name, id, key string) error {
	instKey := r.ks.InstanceKey(name, id)
	resp, err := r.commitElse(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(instKey), ">", 0)},
		[]clientv3.Op{clientv3.OpDelete(key)}, nil)
	if err != nil {
		return etcdUnavailable("unmark instance", err)
	}
	if !resp.Succeeded {
		return errNotFound("instance %s of service %s is not registered", id, name)
	}
	return nil
}

// commitElse runs If(cmps).Then(then...).Else(els...) under EtcdTimeout,
// and notes the revision of a write that succeeded.
func (r *Registrar) commitElse(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err == nil && resp.Succeeded {
		r.noteWrite(resp.Header.Revision)
	}
	return resp, err
}
