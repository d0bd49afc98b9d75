package registrar

import (
	"context"
	"net/http"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// deregister serves DELETE /v1/services/{name}/instances/{id}: it deletes
// the instance key and revokes its lease. 404 when there is no such
// instance; 204 otherwise.
func (r *Registrar) deregister(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	removed, err := r.removeInstance(req.Context(), name, id)
	if err != nil {
		return err
	}
	if !removed {
		return errNotFound("instance %s of service %s is not registered", id, name)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeInstance deletes instance name/id and revokes its lease (and with
// it the keys beside the instance). It reports whether the instance was
// there to remove.
func (r *Registrar) removeInstance(ctx context.Context, name, id string) (bool, error) {
	reqCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	key := r.ks.InstanceKey(name, id)
	// Forget first: the instance must not be revived while the delete is
	// under way, nor after it, whatever etcd answers.
	r.seen.forget(name, id)
	resp, err := r.cfg.Client.Delete(ctx, key, clientv3.WithPrevKV())
	if err != nil {
		// The delete may have been applied: if the key is gone now, it is
		// deregistered, and the lease it was on can go too.
		lease, known := r.indexedLease(name, id)
		if o, _ := r.readBack(reqCtx, key, 0); o != written || !known {
			return false, etcdUnavailable("delete instance", err)
		}
		r.revoke(clientv3.LeaseID(lease), 0, "deregistered")
		r.log.Info("deregistered", "service", name, "id", id, "note", "etcd answered the delete with an error, but the instance is gone")
		return true, nil
	}
	if resp.Deleted == 0 {
		return false, nil
	}
	r.noteWrite(resp.Header.Revision)
	if lease := clientv3.LeaseID(resp.PrevKvs[0].Lease); lease != 0 {
		r.revoke(lease, 0, "deregistered")
	}
	r.log.Info("deregistered", "service", name, "id", id)
	return true, nil
}

// deleteService serves DELETE /v1/services/{name} (admin): it removes a
// service that has no live instances, and frees its VIP, in one
// transaction. 409 while instances live; 404 for an unknown service.
func (r *Registrar) deleteService(w http.ResponseWriter, req *http.Request) error {
	name := req.PathValue("name")
	if err := checkName("name", name); err != nil {
		return err
	}
	svcKey, instPrefix := r.ks.ServiceKey(name), r.ks.ServiceInstancesPrefix(name)
	for range maxTxnAttempts {
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
		resp, err := r.cfg.Client.Get(ctx, svcKey)
		cancel()
		if err != nil {
			return etcdUnavailable("read service", err)
		}
		if len(resp.Kvs) == 0 {
			return errNotFound("service %s does not exist", name)
		}
		kv := resp.Kvs[0]
		ops := []clientv3.Op{clientv3.OpDelete(svcKey)}
		var vipKeys []string
		if svc, err := catalog.DecodeService(kv.Value); err == nil {
			vipKeys = []string{r.ks.VIPKey(svc.VIP)}
		} else if vipKeys, err = r.vipKeysOf(req.Context(), name); err != nil {
			// The record does not say its VIP: find the reservations
			// that name this service.
			return err
		}
		for _, vipKey := range vipKeys {
			// Free the VIP only if it is still this service's.
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value(vipKey), "=", name)},
				[]clientv3.Op{clientv3.OpDelete(vipKey)}, nil))
		}
		vips := make([]string, len(vipKeys))
		for i, k := range vipKeys {
			vips[i] = strings.TrimPrefix(k, r.ks.VIPsPrefix())
		}
		tresp, err := r.commit(req.Context(), []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(svcKey), "=", kv.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(instPrefix), "=", 0).WithPrefix(),
		}, ops...)
		if err != nil {
			return etcdUnavailable("delete service", err)
		}
		if tresp.Succeeded {
			r.log.Info("service deleted", "service", name, "vip", strings.Join(vips, ","))
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		n, err := r.countInstances(req.Context(), instPrefix)
		if err != nil {
			return err
		}
		if n > 0 {
			return errConflict("instances", "service %s has %d live instances; deregister them or let them expire first", name, n)
		}
	}
	return &httpError{status: http.StatusServiceUnavailable, retryAfter: 1, msg: "service " + name + " kept changing; try again"}
}

// vipKeysOf returns the keys of the VIP reservations held by service name,
// by reading every reservation: for a service whose record does not decode.
func (r *Registrar) vipKeysOf(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Get(ctx, r.ks.VIPsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, etcdUnavailable("read VIP reservations", err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		if string(kv.Value) == name {
			keys = append(keys, string(kv.Key))
		}
	}
	return keys, nil
}

func (r *Registrar) countInstances(ctx context.Context, prefix string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdUnavailable("count instances", err)
	}
	return resp.Count, nil
}
