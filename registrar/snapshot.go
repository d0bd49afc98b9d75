package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// MaxSnapshotBytes bounds the body of PUT /v1/backup; a larger one is
// answered 413 with field "body". A snapshot of DefaultMaxServices
// services with a few ports each takes about 1 MiB.
const MaxSnapshotBytes = 8 << 20

// saveSnapshot serves GET /v1/backup (admin): the service records, read
// from etcd at one revision. Records that do not decode are left out and
// listed in "skipped".
func (r *Registrar) saveSnapshot(w http.ResponseWriter, req *http.Request) error {
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
	defer cancel()
	doc := api.Snapshot{Version: api.SnapshotVersion, Taken: time.Now().UTC(), Services: []api.SnapshotService{}}
	d, err := catalog.ReadDump(ctx, r.cfg.Client, r.ks, func(key string, err error) {
		r.skipped(key, err)
		doc.Skipped = append(doc.Skipped, key+": "+err.Error())
	})
	if err != nil {
		return etcdUnavailable("read snapshot", err)
	}
	doc.Revision = d.Revision
	for _, s := range d.Services {
		ports := make([]api.Port, len(s.Ports))
		for i, p := range s.Ports {
			ports[i] = api.Port{Name: p.Name, Port: p.Port, Protocol: p.Protocol}
		}
		doc.Services = append(doc.Services, api.SnapshotService{Name: s.Name, VIP: s.VIP, Ports: ports, Created: s.Created})
	}
	r.log.Info("snapshot taken", "services", len(doc.Services), "revision", d.Revision, "skipped", len(doc.Skipped))
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// restoreSnapshot serves PUT /v1/backup[?force=true] (admin): it writes
// every service of the snapshot, with the reservation of its VIP, in one
// etcd transaction — all or nothing. Every record is checked first; one
// that is not valid is a 400 naming it, and nothing is written.
//
// Without force the keyspace must hold no service and no VIP reservation
// (409 otherwise). With force the snapshot wins over what exists: a service
// it names is overwritten with its record — its VIP and ports — and the
// reservation of the service's old VIP is freed; services it does not name
// are kept as they are, with their VIPs and live instances. A snapshot VIP
// held by such a kept service is a 409: taking it would leave that service
// with no VIP of its own.
func (r *Registrar) restoreSnapshot(w http.ResponseWriter, req *http.Request) error {
	force := false
	if s := req.URL.Query().Get("force"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errBadRequest("force", "%q is not true or false", truncate(s, 40))
		}
		force = b
	}
	var doc api.Snapshot
	if err := decodeBodyMax(w, req, &doc, MaxSnapshotBytes); err != nil {
		return err
	}
	auditNote(req, "", fmt.Sprintf("%d services, force=%t", len(doc.Services), force))
	services, err := r.snapshotServices(&doc)
	if err != nil {
		return err
	}
	for range maxTxnAttempts {
		var cur *catalog.Dump
		if force {
			ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
			cur, err = catalog.ReadDump(ctx, r.cfg.Client, r.ks, r.skipped)
			cancel()
			if err != nil {
				return etcdUnavailable("read keyspace", err)
			}
			if err := vipConflict(services, cur); err != nil {
				return err
			}
		}
		cmps, ops, err := r.ks.RestoreTxn(services, cur)
		if err != nil {
			return err
		}
		resp, err := r.commit(req.Context(), cmps, ops...)
		if err != nil {
			return restoreFailed(err, len(cmps), len(ops))
		}
		if !resp.Succeeded {
			if !force {
				return r.notEmpty(req.Context())
			}
			continue // the keyspace changed since it was read
		}
		out := api.RestoreResponse{Services: len(services), Revision: resp.Header.Revision}
		if cur != nil {
			named := make(map[string]bool, len(services))
			for _, s := range services {
				named[s.Name] = true
			}
			for _, s := range cur.Services {
				if named[s.Name] {
					out.Replaced = append(out.Replaced, s.Name)
				}
			}
		}
		r.log.Info("snapshot restored", "services", len(services), "replaced", len(out.Replaced),
			"force", force, "taken", doc.Taken, "revision", resp.Header.Revision)
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	return &httpError{status: http.StatusServiceUnavailable, retryAfter: 1, msg: "the keyspace kept changing during the restore; nothing was written, try again"}
}

// vipConflict returns a 409 when a VIP of services is held by a service of
// cur that services does not name.
func vipConflict(services []*catalog.Service, cur *catalog.Dump) error {
	kept := make(map[string]*catalog.Service, len(cur.Services))
	for _, s := range cur.Services {
		kept[s.Name] = s
	}
	for _, s := range services {
		delete(kept, s.Name)
	}
	for i, s := range services {
		holder, ok := kept[cur.Reservations[s.VIP]]
		if ok && holder.VIP == s.VIP {
			return errConflict(fmt.Sprintf("services[%d].vip", i),
				"VIP %s of service %s is held by service %s, which the snapshot does not name; nothing was written (delete %s first, or restore a snapshot that names it)",
				s.VIP, s.Name, holder.Name, holder.Name)
		}
	}
	return nil
}

// notEmpty answers a restore refused because the keyspace holds services or
// VIP reservations: a 409 saying what it holds.
func (r *Registrar) notEmpty(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	d, err := catalog.ReadDump(ctx, r.cfg.Client, r.ks, nil)
	what := "services or VIP reservations"
	if err == nil {
		what = fmt.Sprintf("%d services and %d VIP reservations", len(d.Services), len(d.Reservations))
		if n := len(d.Services); n > 0 {
			names := make([]string, 0, 4)
			for _, s := range d.Services[:min(3, n)] {
				names = append(names, s.Name)
			}
			if n > 3 {
				names = append(names, "...")
			}
			what = fmt.Sprintf("%d services (%s) and %d VIP reservations", n, strings.Join(names, ", "), len(d.Reservations))
		}
	}
	return errConflict("services", "the keyspace is not empty: it holds %s; nothing was written (restore with force=true to overwrite the services the snapshot names)", what)
}

// restoreFailed answers a restore transaction etcd did not apply. A
// transaction larger than etcd allows (--max-txn-ops, --max-request-bytes)
// is a 507 saying so: nothing was written, and retrying will not help.
func restoreFailed(err error, cmps, ops int) error {
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) || status.Code(err) == codes.ResourceExhausted {
		return &httpError{status: http.StatusInsufficientStorage, field: "services", cause: err,
			msg: fmt.Sprintf("etcd refused the restore as one transaction of %d operations (%s); nothing was written. Raise etcd's --max-txn-ops to at least %d (and --max-request-bytes if the snapshot is large): a restore is all or nothing, so it is never split", ops, rpctypes.ErrorDesc(err), max(cmps, ops))}
	}
	return etcdUnavailable("restore txn", err)
}
