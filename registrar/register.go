package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// maxTxnAttempts bounds the transactions of one registration that lose a
// race (another registrar took the VIP or changed the service) and retry.
const maxTxnAttempts = 32

// register serves POST /v1/services/{name}/instances.
func (r *Registrar) register(w http.ResponseWriter, req *http.Request) error {
	client := r.clientKey(req)
	if ok, wait := r.rate.allow(client, time.Now()); !ok {
		r.metrics.limited.WithLabelValues("rate").Inc()
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return errRateLimited(wait, r.cfg.Limits.RegisterRate)
	}
	var body api.RegisterRequest
	if err := decodeBody(w, req, &body); err != nil {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return err
	}
	in, ttl, err := r.instanceFrom(req.PathValue("name"), &body, remoteAddr(req), time.Now())
	if err != nil {
		auditNote(req, body.ID, "")
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return err
	}
	protos, err := portProtocols(&body)
	if err != nil {
		auditNote(req, in.ID, "")
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return err
	}
	auditNote(req, in.ID, "")
	admitted, err := r.admit(req.Context(), client, in)
	if err != nil {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return err
	}
	res, err := r.put(req.Context(), in, protos, ttl)
	admitted(err == nil)
	if err != nil {
		result := "failed"
		var he *httpError
		if errors.As(err, &he) && he.status < 500 {
			result = "rejected"
		}
		r.metrics.registrations.WithLabelValues(result).Inc()
		return err
	}
	r.seen.registered(in.Service, in.ID, res.value, ttl, time.Now())
	result := "new"
	if res.replaced {
		result = "renewed"
	}
	r.metrics.registrations.WithLabelValues(result).Inc()
	port, ports := virtualPorts(res.service, in)
	attrs := []any{"service", in.Service, "id", in.ID, "address", in.Address, "port", in.Port,
		"vip", res.service.VIP, "ttl", ttl, "lease", fmt.Sprintf("%x", res.lease), "again", res.replaced}
	if in.Host.IsValid() {
		attrs = append(attrs, "host", in.Host)
	}
	r.log.Info("registered", attrs...)
	writeJSON(w, http.StatusOK, api.RegisterResponse{
		ID:      in.ID,
		Address: in.Address,
		VIP:     res.service.VIP,
		Port:    port,
		Ports:   ports,
		TTL:     api.Duration(ttl),
		Lease:   int64(res.lease),
	})
	return nil
}

// admit checks in against the data and capacity limits and counts it
// against the token of client, if any. The registration calls done with
// whether it stored in; a failed one gives back what admit counted.
func (r *Registrar) admit(ctx context.Context, client string, in *catalog.Instance) (done func(stored bool), err error) {
	if err := r.checkData(in); err != nil {
		return nil, err
	}
	snap := r.ix.Snapshot()
	if _, ok := snap.Service(in.Service); !ok {
		// A new service counts against the limit on services: judge it by
		// an index that holds this registrar's own writes.
		snap = r.ownWrites(ctx, snap)
	}
	if err := r.checkCapacity(snap, in); err != nil {
		return nil, err
	}
	if r.tokens == nil || !strings.HasPrefix(client, "token:") {
		return func(bool) {}, nil
	}
	done, ok := r.quota.take(client, in, snap, time.Now())
	if !ok {
		r.metrics.limited.WithLabelValues("instances_per_token").Inc()
		return nil, errInsufficient("Authorization", "the token holds its limit of %d instances; a new instance cannot be added (retrying will not help until its instances leave)", r.cfg.Limits.MaxInstancesPerToken)
	}
	return done, nil
}

// putResult is the outcome of a successful put.
type putResult struct {
	service  *catalog.Service
	lease    clientv3.LeaseID
	replaced bool   // the id was registered already; its old lease is revoked
	value    []byte // the instance's record as written
}

// put stores in under a new lease of ttl, creating its service (and VIP,
// its ports carrying the protocols protos names)
// when it has none, all in one transaction. When etcd answers the
// transaction with an error, put reads the instance key back: etcd may have
// applied it (it applies a transaction that crosses its space quota, then
// reports "no space"; a timeout or a cut connection says nothing), and then
// the registration succeeded. It revokes the lease only once it knows the
// transaction was not applied, so nothing of a failed attempt is left in
// etcd and nothing of a successful one is taken back.
func (r *Registrar) put(ctx context.Context, in *catalog.Instance, protos map[string]string, ttl time.Duration) (*putResult, error) {
	return r.putIf(ctx, in, protos, ttl, nil)
}

// putIf is put with extra conditions on the transaction, and never
// creates a service: when the conditions fail, or the service does not
// exist, it returns errNotPut. It serves to put back a record of the
// index whose lease etcd let expire, and puts back its maintenance and
// drain with it.
//
// Either way the instance keeps its maintenance and drain keys: the
// transaction puts them under the new lease too (see carried), so that
// revoking the old lease does not take them.
func (r *Registrar) putIf(ctx context.Context, in *catalog.Instance, protos map[string]string, ttl time.Duration, conds []clientv3.Cmp) (*putResult, error) {
	val, err := catalog.EncodeInstance(in)
	if err != nil {
		return nil, fmt.Errorf("encode instance: %w", err)
	}
	lease, err := r.grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			r.revoke(lease, ttl, "registration failed")
		}
	}()

	name := in.Service
	instKey := r.ks.InstanceKey(name, in.ID)
	putInst := clientv3.OpPut(instKey, string(val), clientv3.WithLease(lease), clientv3.WithPrevKV())
	tried := map[netip.Addr]bool{}
	snap := r.ix.Snapshot()
	for attempt := range maxTxnAttempts {
		// The first attempt trusts the index (the transaction checks it);
		// after a conflict, read the service record from etcd.
		var current *catalog.Service
		if attempt == 0 {
			if e, ok := snap.Service(name); ok {
				current = e.Service
			}
		} else if current, err = r.serviceRecord(ctx, name); err != nil {
			return nil, err
		}
		var (
			svc  *catalog.Service
			cmps []clientv3.Cmp
			ops  []clientv3.Op
		)
		if current == nil && conds != nil {
			if attempt == 0 {
				continue // the index may lag: ask etcd
			}
			return nil, errNotPut
		}
		if current != nil {
			svc = current
			if err := checkPorts(svc, in, protos); err != nil {
				if attempt == 0 {
					continue // the index may lag: judge by etcd's record
				}
				return nil, err
			}
			cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(r.ks.ServiceKey(name)), "=", svc.ModRevision)}
			ops = []clientv3.Op{putInst}
		} else {
			vip, err := r.vips.pick(r.ix.Snapshot(), tried)
			if err != nil {
				r.metrics.limited.WithLabelValues("vip_range").Inc()
				return nil, errInsufficient("vip", "%v %s: service %s cannot be created; delete unused services or widen the range (retrying will not help)", err, r.cfg.VIPCIDR, name)
			}
			svc = &catalog.Service{Name: name, VIP: vip, Ports: servicePorts(in, protos), Created: in.Registered}
			sval, err := catalog.EncodeService(svc)
			if err != nil {
				return nil, fmt.Errorf("encode service: %w", err)
			}
			vipKey := r.ks.VIPKey(vip)
			cmps = []clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(vipKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(r.ks.ServiceKey(name)), "=", 0),
			}
			ops = []clientv3.Op{
				clientv3.OpPut(vipKey, name),
				clientv3.OpPut(r.ks.ServiceKey(name), string(sval)),
				putInst,
			}
			tried[vip] = true
		}
		var side *carried
		switch {
		case conds != nil:
			side, err = r.carryRecord(in, lease)
		case attempt == 0:
			side, err = r.carryIndexed(snap, name, in.ID, lease)
		default:
			side, err = r.carryStored(ctx, name, in.ID, lease)
		}
		if err != nil {
			return nil, err
		}
		cmps = append(cmps, conds...)
		cmps = append(cmps, side.cmps...)
		// The instance's put stays last: its answer says what it replaced.
		ops = append(ops[:len(ops)-1:len(ops)-1], append(side.ops, putInst)...)
		resp, err := r.commit(ctx, cmps, ops...)
		if err != nil {
			o, rev := r.readBack(ctx, instKey, lease)
			r.metrics.readBacks.WithLabelValues(o.String()).Inc()
			switch {
			case o == written:
				// Committed, though etcd answered an error.
				r.log.Warn("registration committed although etcd answered an error", "service", name, "id", in.ID, "err", err)
				done = true
				r.noteWrite(rev)
				// It replaced the version its compares pin (readBack
				// revoked that version's lease).
				return &putResult{service: svc, lease: lease, replaced: side.replaces != 0, value: val}, nil
			case o == unknown || !settled(err):
				// The transaction may yet be applied: the reaper revokes
				// the lease once a later read shows the key does not hold it.
				done = true
				r.reaper.add(lease, instKey, ttl, inFlightFor)
				if side.replaces != 0 {
					// Applied, it replaced that lease, which then holds
					// nothing; a registration that replaces this one in
					// turn learns only of lease, and the reaper's read may
					// come after it: revoke that lease too unless the key
					// still holds it.
					r.reaper.add(side.replaces, instKey, 0, inFlightFor)
				}
			}
			return nil, etcdUnavailable("register txn", err)
		}
		if !resp.Succeeded {
			if len(conds) > 0 {
				return nil, errNotPut
			}
			// Another registrar took the VIP, created the service or
			// changed it: read again and retry.
			r.metrics.vipConflicts.Inc()
			continue
		}
		done = true
		res := &putResult{service: svc, lease: lease, value: val}
		instResp := resp.Responses[len(resp.Responses)-1].GetResponsePut()
		if prev := instResp.GetPrevKv(); prev != nil {
			res.replaced = true
			if old := clientv3.LeaseID(prev.Lease); old != 0 && old != lease {
				r.revoke(old, 0, "re-registered")
			}
		}
		return res, nil
	}
	return nil, &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
		msg: fmt.Sprintf("service %s changed under %d attempts to register; try again", name, maxTxnAttempts)}
}

// commit runs If(cmps).Then(ops) under EtcdTimeout.
func (r *Registrar) commit(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err == nil && resp.Succeeded {
		r.noteWrite(resp.Header.Revision)
	}
	return resp, err
}

// noteWrite records the revision of a write this registrar made, so that
// its own list reads wait for the index to show it (read-your-writes).
func (r *Registrar) noteWrite(rev int64) {
	for {
		cur := r.lastWrite.Load()
		if rev <= cur || r.lastWrite.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// serviceRecord reads the record of service name from etcd: nil when
// there is none.
func (r *Registrar) serviceRecord(ctx context.Context, name string) (*catalog.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	resp, err := r.cfg.Client.Get(ctx, r.ks.ServiceKey(name))
	if err != nil {
		return nil, etcdUnavailable("read service", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	svc, err := catalog.DecodeService(resp.Kvs[0].Value)
	if err == nil && svc.Name != name {
		err = fmt.Errorf("record names service %q", svc.Name)
	}
	if err != nil {
		r.skipped(r.ks.ServiceKey(name), err)
		return nil, &httpError{status: http.StatusInternalServerError, msg: "the stored record of service " + name + " is unreadable; an admin must fix or delete it", cause: err}
	}
	svc.ModRevision = resp.Kvs[0].ModRevision
	return svc, nil
}

func (r *Registrar) skipped(key string, err error) {
	r.log.Warn("skipping undecodable value", "key", key, "err", err)
}
