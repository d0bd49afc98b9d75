package registrar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// Bounds of a drain's ?timeout=.
const (
	DefaultDrainTimeout = 30 * time.Second
	MaxDrainTimeout     = 10 * time.Minute
)

// drainRoute is the route of a drain, which the middleware lets wait up to
// MaxDrainTimeout.
const drainRoute = "POST /v1/services/{name}/instances/{id}/drain"

// errShutdown is the cause that ends a drain's wait when the server shuts
// down.
var errShutdown = errors.New("the registrar is shutting down")

// drainQuery is the query of POST .../drain.
type drainQuery struct {
	timeout     time.Duration
	connections bool // ?wait=connections
	deregister  bool
}

func parseDrain(req *http.Request) (drainQuery, error) {
	q := req.URL.Query()
	dq := drainQuery{timeout: DefaultDrainTimeout, deregister: true}
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			secs, serr := strconv.ParseInt(s, 10, 64)
			if serr != nil {
				return dq, errBadRequest("timeout", "%q is not a duration such as \"30s\"", truncate(s, 40))
			}
			// Bound before converting: a large count of seconds overflows.
			d = time.Duration(min(max(secs, -1), int64(MaxDrainTimeout/time.Second)+1)) * time.Second
		}
		if d <= 0 || d > MaxDrainTimeout {
			return dq, errBadRequest("timeout", "%q is not in (0, %s]", truncate(s, 40), MaxDrainTimeout)
		}
		dq.timeout = d
	}
	switch w := q.Get("wait"); w {
	case "", "revision":
	case "connections":
		dq.connections = true
	default:
		return dq, errBadRequest("wait", "%q is not \"connections\"", truncate(w, 40))
	}
	if s := q.Get("deregister"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return dq, errBadRequest("deregister", "%q is not true or false", truncate(s, 40))
		}
		dq.deregister = b
	}
	return dq, nil
}

// drain serves POST /v1/services/{name}/instances/{id}/drain: it marks the
// instance draining (readers send it no new traffic), waits until every
// live reader (catalog.Reader) serves that revision or a later one — and,
// with ?wait=connections, holds no open connection to the instance — or
// until ?timeout= (default 30s, at most 10m) passes or the registrar shuts
// down, then deregisters the instance unless ?deregister=false. Readers
// whose keys expire meanwhile (stopped) drop out of the wait. A drain
// holds a blocking-query slot while it waits. 200 with an
// api.DrainResponse; 404 when there is no such instance. When the client
// goes away during the wait, the instance stays draining and registered.
func (r *Registrar) drain(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	dq, err := parseDrain(req)
	if err != nil {
		return err
	}
	release, err := r.waitSlot(req, "drain")
	if err != nil {
		return err
	}
	defer release()
	now := time.Now()
	rev, lease, err := r.markInstance(req.Context(), name, id, r.ks.DrainKey(name, id), func(prev []byte) ([]byte, error) {
		d := &catalog.Drain{Since: now}
		if old, err := catalog.DecodeDrain(prev); prev != nil && err == nil {
			d.Since = old.Since
		}
		return catalog.EncodeDrain(d)
	})
	if err != nil {
		return err
	}
	r.log.Info("draining", "service", name, "id", id, "revision", rev, "timeout", dq.timeout, "connections", dq.connections)
	// The instance stays registered while it drains, whether or not its
	// process still heartbeats: the drain deregisters it at the end.
	stopRenewing := r.keepLeaseAlive(req.Context(), lease)
	defer stopRenewing()

	conn := ""
	if dq.connections {
		conn = catalog.ConnectionKey(name, id)
	}
	deadline := now.Add(dq.timeout)
	readers, ended, err := r.waitReaders(req.Context(), dq.timeout, func(rd *catalog.Reader) bool { return rd.Confirms(rev, conn) })
	if err != nil {
		return err
	}
	// Every reader serves the drain; DNS answers given just before it may
	// still be acted on for their TTL: wait that out too.
	held := now.Add(answerTTL(readers))
	if ended == "" && time.Now().Before(held) {
		if ended, err = r.holdUntil(req.Context(), held, deadline); err != nil {
			return err
		}
	}
	res := api.DrainResponse{Confirmed: ended == "", Ended: ended, Revision: rev, Readers: len(readers), Waited: api.Duration(time.Since(now))}
	result := ended
	if res.Confirmed {
		result = "confirmed"
	}
	r.metrics.drains.WithLabelValues(result).Inc()
	r.metrics.drainWait.Observe(time.Duration(res.Waited).Seconds())
	for _, rd := range readers {
		if !rd.Confirms(rev, conn) || (ended != "" && time.Now().Before(now.Add(time.Duration(rd.AnswerTTL)*time.Second))) {
			res.Pending = append(res.Pending, readerView(rd))
		}
	}
	if dq.deregister {
		removed, err := r.removeDrained(req.Context(), name, id, lease)
		if err != nil {
			return err
		}
		res.Deregistered = removed
	}
	r.log.Info("drained", "service", name, "id", id, "confirmed", res.Confirmed, "ended", ended,
		"pending", len(res.Pending), "waited", time.Duration(res.Waited), "deregistered", res.Deregistered)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// removeDrained deregisters instance name/id if it is still the
// registration the drain marked (on lease). When the id was registered
// again meanwhile (a new process, under a new lease, which a registration
// does not carry the drain to), the drain was the old registration's: the
// new one stays. It reports whether it deregistered.
func (r *Registrar) removeDrained(ctx context.Context, name, id string, lease int64) (bool, error) {
	instKey := r.ks.InstanceKey(name, id)
	resp, err := r.commitElse(ctx,
		[]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(instKey), "=", lease), clientv3.Compare(clientv3.CreateRevision(instKey), ">", 0)},
		[]clientv3.Op{clientv3.OpDelete(instKey)}, nil)
	if err != nil {
		return false, etcdUnavailable("deregister drained instance", err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	r.seen.forget(name, id)
	if lease != 0 {
		r.revoke(clientv3.LeaseID(lease), 0, "drained")
	}
	r.log.Info("deregistered", "service", name, "id", id, "after", "drain")
	return true, nil
}

// waitReaders waits until every live reader confirms, for timeout, or until
// the server shuts down. It returns the readers seen last and why the wait
// ended unconfirmed ("timeout", "shutdown"; "" when every reader
// confirmed). When req's client goes away it returns an error.
func (r *Registrar) waitReaders(ctx context.Context, timeout time.Duration, confirms func(*catalog.Reader) bool) ([]*catalog.Reader, string, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wctx, cancelTimeout := context.WithTimeout(wctx, timeout)
	defer cancelTimeout()
	if ch := draining(ctx); ch != nil {
		go func() {
			select {
			case <-ch:
				cancel(errShutdown)
			case <-wctx.Done():
			}
		}()
	}
	readers, err := catalog.WaitReaders(wctx, r.cfg.Client, r.ks, func(rs []*catalog.Reader) bool {
		for _, rd := range rs {
			if !confirms(rd) {
				return false
			}
		}
		return true
	}, r.skipped)
	switch {
	case err == nil:
		return readers, "", nil
	case ctx.Err() != nil:
		return nil, "", etcdUnavailable("wait for readers", ctx.Err())
	case errors.Is(context.Cause(wctx), errShutdown):
		return readers, "shutdown", nil
	}
	return readers, "timeout", nil
}

// answerTTL returns the longest TTL of the DNS answers the readers give.
func answerTTL(readers []*catalog.Reader) time.Duration {
	var ttl int64
	for _, rd := range readers {
		ttl = max(ttl, rd.AnswerTTL)
	}
	return time.Duration(min(ttl, int64(MaxDrainTimeout/time.Second))) * time.Second
}

// holdUntil waits until held, or until deadline passes first ("timeout"),
// the server shuts down ("shutdown") or the client goes away (an error).
func (r *Registrar) holdUntil(ctx context.Context, held, deadline time.Time) (string, error) {
	end, ended := held, ""
	if deadline.Before(held) {
		end, ended = deadline, "timeout"
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-t.C:
		return ended, nil
	case <-draining(ctx):
		return "shutdown", nil
	case <-ctx.Done():
		return "", etcdUnavailable("wait for DNS answers to expire", ctx.Err())
	}
}

// waitSlot takes a blocking-query slot for a request of req that waits
// (what names the request in the 429), or returns the 429 that refuses it.
func (r *Registrar) waitSlot(req *http.Request, what string) (func(), error) {
	release, full := r.blocking.acquire(r.clientKey(req))
	if full == "" {
		r.metrics.blockingActive.Inc()
		return func() { r.metrics.blockingActive.Dec(); release() }, nil
	}
	r.metrics.limited.WithLabelValues("blocking_" + full).Inc()
	limit, who := r.cfg.Limits.MaxBlockingQueries, "in all"
	if full == "client" {
		limit, who = r.cfg.Limits.MaxBlockingPerClient, "from this client"
	}
	return nil, &httpError{status: http.StatusTooManyRequests, retryAfter: 5,
		msg: fmt.Sprintf("too many waiting requests (blocking queries and drains) %s (limit %d); retry the %s later", who, limit, what)}
}

// deleteDrain serves DELETE /v1/services/{name}/instances/{id}/drain: it
// ends the drain of an instance a drain left registered
// (?deregister=false), which then takes traffic again. 204, also when it
// was not draining; 404 when there is no such instance.
func (r *Registrar) deleteDrain(w http.ResponseWriter, req *http.Request) error {
	name, id, err := instancePath(req)
	if err != nil {
		return err
	}
	if err := r.unmarkInstance(req.Context(), name, id, r.ks.DrainKey(name, id)); err != nil {
		return err
	}
	r.log.Info("drain ended", "service", name, "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
