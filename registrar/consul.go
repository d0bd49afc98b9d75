package registrar

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/netsel/netsel/catalog"
)

// ConsulDatacenter is the datacenter the Consul-compatible API (GET
// /v1/catalog/..., /v1/health/service/..., /v1/agent/self, /v1/status/...)
// says NetSel is: Consul's own default name. A query naming another with
// ?dc= is refused.
const ConsulDatacenter = "dc1"

// Consul's blocking-query and cluster headers.
const (
	consulIndexHeader       = "X-Consul-Index"
	consulKnownLeaderHeader = "X-Consul-KnownLeader"
	consulLastContactHeader = "X-Consul-LastContact"
	consulTokenHeader       = "X-Consul-Token"
)

// consulServed lists the Consul endpoints NetSel answers, for errors.
const consulServed = "GET /v1/catalog/services, /v1/catalog/service/{name}, /v1/catalog/nodes, " +
	"/v1/catalog/datacenters, /v1/health/service/{name}, /v1/agent/self, /v1/status/leader, /v1/status/peers"

// consulAreas are the first path segments of Consul's HTTP API: what NetSel
// does not serve under them is answered with a JSON 404 (405 for a write to
// a served path) that says so, never with a silent wrong answer.
var consulAreas = []string{
	"acl", "agent", "catalog", "config", "connect", "coordinate", "discovery-chain", "event",
	"exported-services", "imported-services", "internal", "kv", "namespace", "namespaces",
	"operator", "partition", "partitions", "peering", "peerings", "query", "session",
	"snapshot", "status", "txn",
}

// consulRoutes adds the read-only subset of Consul's HTTP API to mux, so
// that Consul clients (the official Go client, Prometheus' consul_sd_configs,
// consul-template) read NetSel's catalog unchanged.
func (r *Registrar) consulRoutes(mux *http.ServeMux) {
	handle := func(pattern string, h handlerFunc) {
		mux.Handle(pattern, consulToken(r.endpoint(ActionRead, h)))
	}
	handle("GET /v1/catalog/services", r.consulCatalogServices)
	handle("GET /v1/catalog/service/{name}", r.consulCatalogService)
	handle("GET /v1/catalog/nodes", r.consulCatalogNodes)
	handle("GET /v1/catalog/datacenters", r.consulDatacenters)
	handle("GET /v1/health/service/{name}", r.consulHealthService)
	handle("GET /v1/agent/self", r.consulAgentSelf)
	handle("GET /v1/status/leader", r.consulStatusLeader)
	handle("GET /v1/status/peers", r.consulStatusPeers)

	notServed := r.endpoint("", consulNotServed(mux))
	for _, a := range consulAreas {
		mux.Handle("/v1/"+a, notServed)
		mux.Handle("/v1/"+a+"/{p}", notServed)
		mux.Handle("/v1/"+a+"/{p}/{rest...}", notServed)
	}
	// Not "/v1/health", NetSel's own health endpoint.
	mux.Handle("/v1/health/{p}", notServed)
	mux.Handle("/v1/health/{p}/{rest...}", notServed)
}

// consulToken lets h authorize a request by the token a Consul client sends:
// the X-Consul-Token header, else (older clients) ?token=. It becomes the
// bearer token, in place of any Authorization header (Prometheus sends an
// empty basic one beside it); without either, Authorization: Bearer works.
func consulToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok := strings.TrimSpace(req.Header.Get(consulTokenHeader))
		if tok == "" {
			tok = strings.TrimSpace(req.URL.Query().Get("token"))
		}
		if tok != "" {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		h.ServeHTTP(w, req)
	})
}

// consulNotServed answers a Consul path NetSel does not serve: 405 for a
// write to a path it serves for GET, else 404.
func consulNotServed(mux *http.ServeMux) handlerFunc {
	return func(w http.ResponseWriter, req *http.Request) error {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			probe := req.Clone(req.Context())
			probe.Method = http.MethodGet
			if _, p := mux.Handler(probe); strings.HasPrefix(p, "GET ") {
				w.Header().Set("Allow", "GET, HEAD")
				return &httpError{status: http.StatusMethodNotAllowed,
					msg: "NetSel's Consul-compatible API is read-only (" + consulServed + "); register with POST /v1/services/{name}/instances"}
			}
		}
		return errNotFound("NetSel serves only a read-only subset of Consul's HTTP API (%s); %s %s is not part of it",
			consulServed, req.Method, truncate(req.URL.Path, 80))
	}
}

// consulQuery is what a Consul read asked for, beyond its path.
type consulQuery struct {
	blockingQuery
	stale bool
}

// parseConsulQuery checks the query options Consul clients send: the
// datacenter, namespace and partition must be NetSel's (or absent), options
// that would change the answer in ways NetSel cannot are refused, and
// ?index=&wait= make a blocking query as NetSel's own (parseBlocking). Like
// Consul, a wait without an index is allowed (and ignored).
func parseConsulQuery(req *http.Request) (consulQuery, error) {
	q := req.URL.Query()
	if dc := q.Get("dc"); dc != "" && dc != ConsulDatacenter {
		return consulQuery{}, errBadRequest("dc", "NetSel serves only datacenter %q, not %q", ConsulDatacenter, truncate(dc, 40))
	}
	for _, f := range []string{"ns", "namespace", "partition", "ap"} {
		if v := q.Get(f); v != "" && v != "default" {
			return consulQuery{}, errBadRequest(f, "NetSel has only the default namespace and partition, not %q", truncate(v, 40))
		}
	}
	for _, f := range []string{"filter", "node-meta", "peer", "sameness-group", "hash"} {
		if q.Has(f) {
			return consulQuery{}, errBadRequest(f, "%s is not supported by NetSel's Consul-compatible API", f)
		}
	}
	cq := consulQuery{stale: q.Has("stale")}
	if !q.Has("index") {
		// Check the wait as a blocking query would, then answer at once.
		if s := q.Get("wait"); s != "" {
			if _, err := parseWait(s); err != nil {
				return cq, err
			}
		}
		return cq, nil
	}
	bq, err := parseBlocking(req)
	cq.blockingQuery = bq
	return cq, err
}

// consulSnapshot returns the snapshot a Consul list answers from: after
// q's wait for any change when it blocks, else once it shows this
// registrar's own writes (at once with ?stale). It holds a blocking slot
// while it waits.
func (r *Registrar) consulSnapshot(req *http.Request, q consulQuery) (*catalog.Snapshot, error) {
	if q.blocking {
		release, err := r.blockingSlot(req)
		if err != nil {
			return nil, err
		}
		defer release()
		return requireSynced(r.waitList(req.Context(), q.blockingQuery))
	}
	return r.syncedRead(req.Context(), q.stale)
}

// consulInstances is the common part of the reads of one service
// (/v1/catalog/service/{name}, /v1/health/service/{name}): it checks
// {name}, the query options and ?tag= (tagFilter), and returns the entry of
// the service (nil when absent), its instances that carry every tag and its
// index, as consulSnapshot, but a blocking query waits only for a change
// to that service.
func (r *Registrar) consulInstances(req *http.Request) (*catalog.Entry, []*catalog.Instance, int64, error) {
	name := req.PathValue("name")
	if err := checkName("name", name); err != nil {
		return nil, nil, 0, err
	}
	q, err := parseConsulQuery(req)
	if err != nil {
		return nil, nil, 0, err
	}
	show, err := tagFilter(req, func(*catalog.Instance) bool { return true })
	if err != nil {
		return nil, nil, 0, err
	}
	var (
		e     *catalog.Entry
		index int64
	)
	if q.blocking {
		release, err := r.blockingSlot(req)
		if err != nil {
			return nil, nil, 0, err
		}
		defer release()
		e, index = r.waitService(req.Context(), name, q.blockingQuery)
		if _, err := requireSynced(r.ix.Snapshot()); err != nil {
			return nil, nil, 0, err
		}
	} else {
		snap, err := r.consulSnapshot(req, q)
		if err != nil {
			return nil, nil, 0, err
		}
		e, index = serviceAt(snap, name)
	}
	var ins []*catalog.Instance
	if e != nil {
		for _, in := range e.Instances() {
			if show(in) {
				ins = append(ins, in)
			}
		}
	}
	return e, ins, index, nil
}

// setConsulMeta sets the headers Consul clients read from every answer:
// the index (never 0, which a client would take as "no blocking"), whether
// there is a leader (the index has read etcd) and the last contact with it.
func (r *Registrar) setConsulMeta(w http.ResponseWriter, index int64) {
	w.Header().Set(consulIndexHeader, strconv.FormatInt(max(index, 1), 10))
	w.Header().Set(consulKnownLeaderHeader, strconv.FormatBool(r.ix.Snapshot().Synced()))
	w.Header().Set(consulLastContactHeader, "0")
}

// localAddr is the address req came in on ("" when unknown).
func localAddr(ctx context.Context) string {
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return ""
}
