package registrar

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// listServices serves GET /v1/services from the index, once the index shows
// this registrar's own latest write (so a client sees what it just
// registered); with ?stale at once; with ?index= it is a blocking query (see
// blocking.go).
func (r *Registrar) listServices(w http.ResponseWriter, req *http.Request) error {
	q, err := parseBlocking(req)
	if err != nil {
		return err
	}
	snap := r.ix.Snapshot()
	switch {
	case q.blocking:
		release, err := r.blockingSlot(req)
		if err != nil {
			return err
		}
		defer release()
		snap = r.waitList(req.Context(), q)
	case !req.URL.Query().Has("stale"):
		snap = r.ownWrites(req.Context(), snap)
	}
	body, err := r.lists.answer(snap, r.metrics.listBuilds.Inc)
	if err != nil {
		return err
	}
	setIndex(w, snap.Revision())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(body) //nolint:errcheck // the client went away; nothing to do
	return nil
}

// getService serves GET /v1/services/{name}: one page of ?limit= instances
// after ?after= (see parsePage), less those ?state= and ?tag= leave out
// (the page is cut from every instance, then filtered: it may hold fewer
// than limit, even none, and still have a next); by default a consistent read from etcd of
// the service and the page's range of keys; with ?stale from the index; with
// ?index= a blocking query answered from the index, whose wait is for a
// change anywhere in the service.
func (r *Registrar) getService(w http.ResponseWriter, req *http.Request) error {
	name := req.PathValue("name")
	if err := checkName("name", name); err != nil {
		return err
	}
	q, err := parseBlocking(req)
	if err != nil {
		return err
	}
	pg, err := parsePage(req)
	if err != nil {
		return err
	}
	show, err := stateFilter(req)
	if err != nil {
		return err
	}
	if show, err = tagFilter(req, show); err != nil {
		return err
	}
	var (
		entry *catalog.Entry
		index int64
		page  []*catalog.Instance
		next  string
	)
	switch {
	case q.blocking:
		release, err := r.blockingSlot(req)
		if err != nil {
			return err
		}
		defer release()
		entry, index = r.waitService(req.Context(), name, q)
	case req.URL.Query().Has("stale"):
		snap := r.ix.Snapshot()
		entry, index = serviceAt(snap, name)
	default:
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.EtcdTimeout)
		defer cancel()
		e, rev, n, err := catalog.LoadServicePage(ctx, r.cfg.Client, r.ks, name, pg.after, pg.limit, r.skipped)
		if err != nil {
			return etcdUnavailable("read service", err)
		}
		entry, index, next = e, rev, n
		if e != nil {
			index = e.ModRevision
			page = e.Instances()
		}
	}
	if q.blocking || req.URL.Query().Has("stale") {
		if entry != nil {
			page, next = entry.Page(pg.after, pg.limit)
		}
	}
	setIndex(w, index)
	if entry == nil || entry.Service == nil {
		return errNotFound("service %s does not exist", name)
	}
	v := serviceView(entry, page, show)
	v.Next = next
	writeJSON(w, http.StatusOK, v)
	return nil
}

// serviceAt returns the entry of name in snap and its index: the entry's
// revision, or the snapshot's when the service does not exist.
func serviceAt(snap *catalog.Snapshot, name string) (*catalog.Entry, int64) {
	if e, ok := snap.Service(name); ok {
		return e, e.ModRevision
	}
	return nil, snap.Revision()
}

// serviceView is the answer for the service of e with the instances page.
func serviceView(e *catalog.Entry, page []*catalog.Instance, show func(*catalog.Instance) bool) api.ServiceView {
	v := api.ServiceView{
		Name:      e.Name,
		VIP:       e.Service.VIP,
		Ports:     apiPorts(e.Service.Ports),
		Created:   e.Service.Created,
		Instances: make([]api.InstanceView, 0, len(page)),
		Index:     e.ModRevision,
	}
	for _, in := range page {
		if show(in) {
			v.Instances = append(v.Instances, instanceView(in))
		}
	}
	return v
}

// instanceView is the API's view of in.
func instanceView(in *catalog.Instance) api.InstanceView {
	v := api.InstanceView{
		ID:         in.ID,
		Address:    in.Address,
		Port:       in.Port,
		Ports:      in.Ports,
		Weight:     in.Weight,
		Tags:       in.Tags,
		Meta:       in.Meta,
		Zone:       in.Zone,
		Registered: in.Registered,
		Host:       in.Host,
		State:      in.State(),
	}
	switch {
	case in.Maintenance != nil:
		v.Since, v.Reason = in.Maintenance.Since, in.Maintenance.Reason
	case in.Drain != nil:
		v.Since = in.Drain.Since
	case in.Health != nil:
		v.Since = in.Health.Since
	}
	if in.Health != nil {
		v.Output = in.Health.Output
	}
	for _, c := range in.Checks {
		v.Checks = append(v.Checks, api.Check{
			Type: c.Type, Path: c.Path, Port: c.Port, Service: c.Service,
			Interval: api.Duration(c.Interval), Timeout: api.Duration(c.Timeout),
			Failures: c.Failures, Successes: c.Successes,
		})
	}
	return v
}

// stateFilter parses ?state=: absent lists what the API lists by default
// (every state but critical and maintenance), "any" lists every instance,
// and a state lists the instances in it.
func stateFilter(req *http.Request) (func(*catalog.Instance) bool, error) {
	q := req.URL.Query()
	if !q.Has("state") {
		return (*catalog.Instance).Listed, nil
	}
	switch want := q.Get("state"); want {
	case "any":
		return func(*catalog.Instance) bool { return true }, nil
	case catalog.StatePassing, catalog.StateWarning, catalog.StateCritical, catalog.StateMaintenance, catalog.StateDraining:
		return func(in *catalog.Instance) bool { return in.State() == want }, nil
	default:
		return nil, &catalog.FieldError{Field: "state", Msg: fmt.Sprintf("%q is not any, passing, warning, critical, maintenance or draining", truncate(want, 40))}
	}
}

// maxTagFilter bounds ?tag=: no instance carries more tags than that.
const maxTagFilter = catalog.MaxTags

// tagFilter parses ?tag= (repeatable): show, and only instances that carry
// every tag asked, matched as catalog.TagEqual says (ignoring ASCII case).
func tagFilter(req *http.Request, show func(*catalog.Instance) bool) (func(*catalog.Instance) bool, error) {
	tags := req.URL.Query()["tag"]
	if len(tags) == 0 {
		return show, nil
	}
	if len(tags) > maxTagFilter {
		return nil, errBadRequest("tag", "%d tags asked: at most %d (an instance carries at most %d)", len(tags), maxTagFilter, catalog.MaxTags)
	}
	for _, tag := range tags {
		if tag == "" || len(tag) > maxTagLength {
			return nil, errBadRequest("tag", "%q is not a tag: 1-%d bytes", truncate(tag, 40), maxTagLength)
		}
	}
	return func(in *catalog.Instance) bool { return show(in) && in.HasTags(tags...) }, nil
}

// syncedRead returns the snapshot a read answers from: once it shows this
// registrar's own latest write, or at once when stale (see ownWrites), as
// requireSynced lets it through.
func (r *Registrar) syncedRead(ctx context.Context, stale bool) (*catalog.Snapshot, error) {
	snap := r.ix.Snapshot()
	if !stale {
		snap = r.ownWrites(ctx, snap)
	}
	return requireSynced(snap)
}

// requireSynced returns snap, or a 503 when the index has not read etcd
// yet: an empty answer would tell a discovery client (Prometheus) that
// every instance is gone, where an error keeps what it knew until it
// retries.
func requireSynced(snap *catalog.Snapshot) (*catalog.Snapshot, error) {
	if !snap.Synced() {
		return nil, &httpError{status: http.StatusServiceUnavailable, retryAfter: 1,
			msg: "the registrar has not read the catalog from etcd yet; try again"}
	}
	return snap, nil
}

func apiPorts(ps []catalog.Port) []api.Port {
	out := make([]api.Port, len(ps))
	for i, p := range ps {
		out[i] = api.Port{Name: p.Name, Port: p.Port, Protocol: p.Protocol}
	}
	return out
}

func setIndex(w http.ResponseWriter, index int64) {
	w.Header().Set(api.IndexHeader, strconv.FormatInt(index, 10))
}

// healthTimeout bounds the etcd probe of /v1/health.
const healthTimeout = 2 * time.Second

// health serves GET /v1/health: 200 "ok" when etcd answers a
// linearizable read, has raised no alarm, and the index has read the
// keyspace. Under etcd's NOSPACE alarm it is 200 "degraded", with the alarm
// and its cause: registrations fail, but heartbeats, deregistrations and
// reads still work, so a load balancer must keep sending them. Otherwise
// (etcd unreachable or CORRUPT, index syncing) 503 "unavailable".
func (r *Registrar) health(w http.ResponseWriter, req *http.Request) error {
	h := api.Health{Status: "ok", Etcd: "ok", Index: "synced", Revision: r.ix.Snapshot().Revision()}
	ctx, cancel := context.WithTimeout(req.Context(), min(healthTimeout, r.cfg.EtcdTimeout))
	defer cancel()
	if _, err := r.cfg.Client.Get(ctx, r.ks.Prefix()+"health", clientv3.WithCountOnly()); err != nil {
		h.Status, h.Etcd = "unavailable", err.Error()
	}
	if h.Alarms = r.alarms.current(); len(h.Alarms) > 0 {
		if slices.Contains(h.Alarms, pb.AlarmType_CORRUPT.String()) {
			h.Status = "unavailable"
			h.Cause = "etcd has raised CORRUPT: it refuses every request until an operator repairs the member"
		} else {
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Cause = "etcd is out of space (NOSPACE): registrations fail until etcd is compacted, defragmented and the alarm disarmed (the embedded etcd does this itself); heartbeats, deregistrations and reads work"
		}
	}
	if !r.ix.Snapshot().Synced() {
		h.Status, h.Index = "unavailable", "syncing"
	}
	status := http.StatusOK
	if h.Status == "unavailable" {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, h)
	return nil
}

// ownWrites returns snap, or when it does not yet show this registrar's
// latest write, a snapshot that does (waiting up to EtcdTimeout, then the
// latest there is): read-your-writes.
func (r *Registrar) ownWrites(ctx context.Context, snap *catalog.Snapshot) *catalog.Snapshot {
	rev := r.lastWrite.Load()
	if snap.Revision() >= rev {
		return snap
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.EtcdTimeout)
	defer cancel()
	if s, err := r.ix.WaitRevision(ctx, rev); err == nil {
		return s
	}
	return r.ix.Snapshot()
}
