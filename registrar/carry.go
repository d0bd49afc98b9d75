package registrar

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
)

// carried is what a put of an instance under a new lease adds to its
// transaction so that the instance keeps its maintenance key, and — when
// the registrar puts back a record whose lease etcd let expire — its drain
// key (revoking the old lease deletes them): puts of their values under the
// new lease, and compares that fail the transaction when the keys (or the
// instance) are not what the puts assume. A registration by the instance
// does not carry a drain: a drain ends one registration (the drain then
// deregisters that lease only), and a process that registers the same id —
// a restarted copy — is ready for traffic. Health is not carried: the
// checker judges the instance again.
type carried struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	// replaces is the lease of the instance version the compares pin (0:
	// none): the lease the put replaces if the transaction is applied.
	replaces clientv3.LeaseID
}

// carryIndexed returns what carries the keys beside instance id of service
// name as snap knows them. The compares hold only while the instance and
// its keys are unchanged since snap: otherwise the transaction fails and
// the caller asks etcd (carryStored).
func (r *Registrar) carryIndexed(snap *catalog.Snapshot, name, id string, lease clientv3.LeaseID) (*carried, error) {
	instKey, mKey := r.ks.InstanceKey(name, id), r.ks.MaintenanceKey(name, id)
	var cur *catalog.Instance
	if e, ok := snap.Service(name); ok {
		cur, _ = e.Instance(id)
	}
	c := &carried{}
	if cur == nil {
		c.cmps = []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(instKey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(mKey), "=", 0),
		}
		return c, nil
	}
	c.cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(instKey), "=", cur.ModRevision)}
	c.replaces = clientv3.LeaseID(cur.Lease)
	return c, c.addRecorded(cur, mKey, "", lease, func(key string, present bool) []clientv3.Cmp {
		if !present {
			return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		}
		// Present now, and unchanged since snap.
		return []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(key), ">", 0),
			clientv3.Compare(clientv3.ModRevision(key), "<", snap.Revision()+1),
		}
	})
}

// carryRecord returns what puts back the maintenance and drain of in, an
// instance record from the index whose lease etcd let expire (so its keys
// went with it), when the keys are still absent.
func (r *Registrar) carryRecord(in *catalog.Instance, lease clientv3.LeaseID) (*carried, error) {
	c := &carried{}
	return c, c.addRecorded(in, r.ks.MaintenanceKey(in.Service, in.ID), r.ks.DrainKey(in.Service, in.ID), lease,
		func(key string, _ bool) []clientv3.Cmp {
			return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		})
}

// addRecorded adds the puts of in's maintenance and (when dKey is not
// empty) drain under lease, and the compares cmps returns for each key.
func (c *carried) addRecorded(in *catalog.Instance, mKey, dKey string, lease clientv3.LeaseID, cmps func(key string, present bool) []clientv3.Cmp) error {
	c.cmps = append(c.cmps, cmps(mKey, in.Maintenance != nil)...)
	if in.Maintenance != nil {
		v, err := catalog.EncodeMaintenance(in.Maintenance)
		if err != nil {
			return fmt.Errorf("encode maintenance: %w", err)
		}
		c.ops = append(c.ops, clientv3.OpPut(mKey, string(v), clientv3.WithLease(lease)))
	}
	if dKey == "" {
		return nil
	}
	c.cmps = append(c.cmps, cmps(dKey, in.Drain != nil)...)
	if in.Drain != nil {
		v, err := catalog.EncodeDrain(in.Drain)
		if err != nil {
			return fmt.Errorf("encode drain: %w", err)
		}
		c.ops = append(c.ops, clientv3.OpPut(dKey, string(v), clientv3.WithLease(lease)))
	}
	return nil
}

// carryStored returns what carries the maintenance key beside instance id
// of service name as etcd holds it now, on the instance's lease. The
// compares hold while the instance and the key are unchanged since this
// read.
func (r *Registrar) carryStored(ctx context.Context, name, id string, lease clientv3.LeaseID) (*carried, error) {
	instKey, mKey := r.ks.InstanceKey(name, id), r.ks.MaintenanceKey(name, id)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Txn(ctx).Then(clientv3.OpGet(instKey), clientv3.OpGet(mKey)).Commit()
	if err != nil {
		return nil, etcdUnavailable("read instance", err)
	}
	c := &carried{}
	var instLease int64
	for i, key := range []string{instKey, mKey} {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			c.cmps = append(c.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			continue
		}
		kv := kvs[0]
		c.cmps = append(c.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision))
		if i == 0 {
			instLease = kv.Lease
			c.replaces = clientv3.LeaseID(kv.Lease)
		} else if kv.Lease == instLease && instLease != 0 {
			c.ops = append(c.ops, carryKV(kv, lease))
		}
	}
	return c, nil
}

// carryKV puts kv's value again under lease.
func carryKV(kv *mvccpb.KeyValue, lease clientv3.LeaseID) clientv3.Op {
	return clientv3.OpPut(string(kv.Key), string(kv.Value), clientv3.WithLease(lease))
}
