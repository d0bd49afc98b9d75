package registrar

import (
	"net/http"
	"strconv"

	"github.com/netsel/netsel/catalog"
)

// Consul's check statuses.
const (
	consulPassing  = "passing"
	consulCritical = "critical"
)

// consulHealthService serves GET /v1/health/service/{name}: the service's
// instances with their checks, all of them, or with ?passing only those
// whose every check passes; ?tag= (repeatable) keeps those with every tag
// (matched as NetSel's own ?tag=, tagFilter).
// An unknown service is an empty list, as in Consul. With ?index= it is a
// blocking query on that service alone.
func (r *Registrar) consulHealthService(w http.ResponseWriter, req *http.Request) error {
	passing, err := consulPassingOnly(req)
	if err != nil {
		return err
	}
	e, ins, index, err := r.consulInstances(req)
	if err != nil {
		return err
	}
	out := make([]consulServiceEntry, 0, len(ins))
	for _, in := range ins {
		se := consulServiceEntryOf(e, in)
		if passing && !allPassing(se.Checks) {
			continue
		}
		out = append(out, se)
	}
	r.setConsulMeta(w, index)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// consulPassingOnly parses ?passing: present and empty, or a boolean.
func consulPassingOnly(req *http.Request) (bool, error) {
	q := req.URL.Query()
	if !q.Has("passing") {
		return false, nil
	}
	v := q.Get("passing")
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errBadRequest("passing", "%q is not a boolean", truncate(v, 40))
	}
	return b, nil
}

func allPassing(cs []consulCheck) bool {
	for _, c := range cs {
		if c.Status != consulPassing {
			return false
		}
	}
	return true
}

// consulChecks are the checks of in, an instance of e, as Consul shows
// them: one for its health (NetSel's checks' state; passing while it
// heartbeats when it has no checks), and a critical one while it is in
// maintenance ("_service_maintenance:<id>", as Consul's own maintenance
// mode) or draining ("_netsel_drain:<id>": NetSel sends it no new traffic,
// so Consul clients must not either).
func consulChecks(e *catalog.Entry, in *catalog.Instance) []consulCheck {
	node := nodeName(in)
	check := func(id, name, status, typ string) consulCheck {
		return consulCheck{
			Node: node, CheckID: id, Name: name, Status: status, Type: typ,
			ServiceID: in.ID, ServiceName: e.Name, ServiceTags: tagsOf(in),
			CreateIndex: in.ModRevision, ModifyIndex: in.ModRevision,
		}
	}
	var cs []consulCheck
	health := check("service:"+in.ID, "NetSel heartbeat", consulPassing, "ttl")
	if len(in.Checks) > 0 {
		health.Name, health.Type = "NetSel health check", in.Checks[0].Type
	}
	if in.Health != nil {
		health.Status, health.Output = in.Health.State, in.Health.Output
	}
	cs = append(cs, health)
	if m := in.Maintenance; m != nil {
		c := check("_service_maintenance:"+in.ID, "Service Maintenance Mode", consulCritical, "maintenance")
		c.Notes = m.Reason
		if c.Notes == "" {
			c.Notes = "Maintenance mode is enabled for this service, but no reason was provided."
		}
		cs = append(cs, c)
	}
	if in.Drain != nil {
		c := check("_netsel_drain:"+in.ID, "NetSel Drain", consulCritical, "drain")
		c.Notes = "The instance is draining: NetSel sends it no new traffic."
		cs = append(cs, c)
	}
	return cs
}
