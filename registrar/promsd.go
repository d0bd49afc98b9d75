package registrar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/netsel/netsel/catalog"
)

// Labels of the Prometheus service discovery answer, named as Prometheus's
// own discovery mechanisms name theirs (__meta_<sd>_...): relabeling sees
// them, and drops them from the stored series unless it copies them.
const (
	sdLabelService = "__meta_netsel_service"
	sdLabelID      = "__meta_netsel_id"
	sdLabelZone    = "__meta_netsel_zone"
	sdLabelVIP     = "__meta_netsel_vip"
	sdLabelState   = "__meta_netsel_state"
	sdLabelHost    = "__meta_netsel_host"
	// sdLabelTags holds every tag between commas (",a,b,"), as Consul's
	// __meta_consul_tags does, so a regex can match one tag exactly.
	sdLabelTags = "__meta_netsel_tags"
	// sdLabelTag and sdLabelMeta prefix one label per tag ("true") and
	// one per meta key (its value), the name sanitized.
	sdLabelTag  = "__meta_netsel_tag_"
	sdLabelMeta = "__meta_netsel_meta_"
)

// sdCacheQueries is how many distinct queries (?port and ?service) the
// answers of one snapshot are kept for; a Prometheus server asks the same
// one or two each refresh, and any more are built for each request.
const sdCacheQueries = 4

// prometheusSD serves GET /v1/sd/prometheus: every live instance, in any
// state, as Prometheus's HTTP service discovery expects it, a JSON array
// of target groups. Each instance is a group of its own, one target
// (address:port) with its labels, since labels belong to groups (Consul's
// discovery gives each instance its own target too). ?port=NAME targets
// the instance's port of that name and leaves out services without it;
// ?service=NAME, repeatable, keeps only those services. Like GET
// /v1/services it is answered from the index once it shows this
// registrar's latest write (at once with ?stale), and the answer of a
// snapshot is built once for all who ask. Until the index has read etcd it
// answers 503, not an empty list that would make Prometheus drop every
// target.
func (r *Registrar) prometheusSD(w http.ResponseWriter, req *http.Request) error {
	q, err := parseSDQuery(req)
	if err != nil {
		return err
	}
	snap, err := r.syncedRead(req.Context(), req.URL.Query().Has("stale"))
	if err != nil {
		return err
	}
	body, err := r.sd.answer(snap, q)
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

// sdQuery is what a service discovery request asks for.
type sdQuery struct {
	// port is the named port to target; empty: the main port.
	port string
	// services, sorted and without repeats, are the services to list;
	// none: every one.
	services []string
}

// parseSDQuery reads ?port= and ?service= of req; a value that is not a
// DNS label is a 400 naming its parameter.
func parseSDQuery(req *http.Request) (sdQuery, error) {
	v := req.URL.Query()
	var q sdQuery
	if v.Has("port") {
		q.port = v.Get("port")
		if err := checkName("port", q.port); err != nil {
			return sdQuery{}, err
		}
	}
	for _, s := range v["service"] {
		if err := checkName("service", s); err != nil {
			return sdQuery{}, err
		}
		q.services = append(q.services, s)
	}
	slices.Sort(q.services)
	q.services = slices.Compact(q.services)
	return q, nil
}

// key names q among the cached answers.
func (q sdQuery) key() string { return q.port + "?" + strings.Join(q.services, ",") }

// sdCache holds the answers of the latest snapshot asked for, one per
// query (at most sdCacheQueries), so that every Prometheus server
// refreshing at one snapshot shares one answer.
type sdCache struct {
	mu     sync.Mutex
	snap   *catalog.Snapshot
	bodies map[string][]byte
	builds atomic.Int64 // answers encoded, for tests
}

// answer returns the encoded answer to q at snap, built once per snapshot
// and query.
func (c *sdCache) answer(snap *catalog.Snapshot, q sdQuery) ([]byte, error) {
	key := q.key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == snap {
		if b, ok := c.bodies[key]; ok {
			return b, nil
		}
	}
	body, err := encodeSD(snap, q)
	if err != nil {
		return nil, err
	}
	c.builds.Add(1)
	if c.snap == nil || (c.snap != snap && snap.Revision() >= c.snap.Revision()) {
		c.snap, c.bodies = snap, make(map[string][]byte, sdCacheQueries)
	}
	if c.snap == snap && len(c.bodies) < sdCacheQueries {
		c.bodies[key] = body
	}
	return body, nil
}

// sdGroup is one target group of Prometheus's HTTP service discovery.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// encodeSD encodes the target groups of q at snap, sorted by service and
// instance id, newline-terminated; an empty answer is [], never null.
func encodeSD(snap *catalog.Snapshot, q sdQuery) ([]byte, error) {
	names := q.services
	if len(names) == 0 {
		names = snap.Names()
	}
	groups := []sdGroup{}
	for _, name := range names {
		e, ok := snap.Service(name)
		if !ok {
			continue
		}
		if q.port != "" && e.Service != nil {
			if _, ok := e.Service.Port(q.port); !ok {
				continue
			}
		}
		var vip string
		if e.Service != nil && e.Service.VIP.IsValid() {
			vip = e.Service.VIP.String()
		}
		for _, in := range e.Instances() {
			port := in.Port
			if q.port != "" {
				p, ok := in.PortFor(q.port)
				if !ok {
					continue
				}
				port = p
			}
			target := netip.AddrPortFrom(in.Address, uint16(port)).String()
			groups = append(groups, sdGroup{Targets: []string{target}, Labels: sdLabels(in, vip)})
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(groups); err != nil {
		return nil, fmt.Errorf("encode prometheus targets: %w", err)
	}
	return buf.Bytes(), nil
}

// sdLabels returns the labels of instance in of a service with vip.
// Tags and meta keys become label names as Prometheus's discovery makes
// them: each character outside [a-zA-Z0-9_] turns into "_". Where two
// meta keys make one name, the first key in byte order wins, so the answer
// does not change from one build to the next.
func sdLabels(in *catalog.Instance, vip string) map[string]string {
	l := make(map[string]string, 7+len(in.Tags)+len(in.Meta))
	l[sdLabelService] = in.Service
	l[sdLabelID] = in.ID
	l[sdLabelZone] = in.Zone
	l[sdLabelVIP] = vip
	l[sdLabelState] = in.State()
	l[sdLabelHost] = ""
	if in.Host.IsValid() {
		l[sdLabelHost] = in.Host.String()
	}
	l[sdLabelTags] = ""
	if len(in.Tags) > 0 {
		l[sdLabelTags] = "," + strings.Join(in.Tags, ",") + ","
	}
	for _, t := range in.Tags {
		l[sdLabelTag+sanitizeLabelName(t)] = "true"
	}
	keys := make([]string, 0, len(in.Meta))
	for k := range in.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := sdLabelMeta + sanitizeLabelName(k)
		if _, taken := l[name]; !taken {
			l[name] = in.Meta[k]
		}
	}
	return l
}

// sanitizeLabelName turns s into the rest of a label name, as Prometheus's
// strutil.SanitizeLabelName does: every character (rune) outside
// [a-zA-Z0-9_] becomes one "_". The result is a valid label name after a
// prefix that starts with a letter or "_".
func sanitizeLabelName(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			return c
		}
		return '_'
	}, s)
}
