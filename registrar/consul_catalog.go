package registrar

import (
	"net/http"
	"slices"
	"strings"

	"github.com/netsel/netsel/catalog"
)

// consulCatalogServices serves GET /v1/catalog/services: every service with
// at least one instance (a Consul service exists only through its
// instances), with the union of its instances' tags. With ?index= it is a
// blocking query on any change.
func (r *Registrar) consulCatalogServices(w http.ResponseWriter, req *http.Request) error {
	q, err := parseConsulQuery(req)
	if err != nil {
		return err
	}
	snap, err := r.consulSnapshot(req, q)
	if err != nil {
		return err
	}
	out := map[string][]string{}
	snap.Range(func(e *catalog.Entry) bool {
		if e.Len() == 0 {
			return true
		}
		tags := []string{}
		for _, in := range e.Instances() {
			tags = append(tags, in.Tags...)
		}
		slices.Sort(tags)
		out[e.Name] = slices.Compact(tags)
		return true
	})
	r.setConsulMeta(w, snap.Revision())
	writeJSON(w, http.StatusOK, out)
	return nil
}

// consulCatalogService serves GET /v1/catalog/service/{name}: every
// instance of the service whatever its health, or with ?tag= (repeatable)
// those with every tag (matched as NetSel's own ?tag=, tagFilter). An
// unknown service is an empty list, as in Consul. With ?index= it is a
// blocking query on that service alone.
func (r *Registrar) consulCatalogService(w http.ResponseWriter, req *http.Request) error {
	e, ins, index, err := r.consulInstances(req)
	if err != nil {
		return err
	}
	out := make([]consulCatalogService, 0, len(ins))
	for _, in := range ins {
		out = append(out, consulCatalogServiceOf(e, in))
	}
	r.setConsulMeta(w, index)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// consulCatalogNodes serves GET /v1/catalog/nodes: the nodes instances run
// on (see nodeName), sorted by name. With ?index= it is a blocking query on
// any change.
func (r *Registrar) consulCatalogNodes(w http.ResponseWriter, req *http.Request) error {
	q, err := parseConsulQuery(req)
	if err != nil {
		return err
	}
	snap, err := r.consulSnapshot(req, q)
	if err != nil {
		return err
	}
	nodes := map[string]consulNode{}
	snap.Range(func(e *catalog.Entry) bool {
		for _, in := range e.Instances() {
			n := consulNodeOf(in)
			if old, ok := nodes[n.Node]; ok {
				n.CreateIndex = min(old.CreateIndex, n.CreateIndex)
				n.ModifyIndex = max(old.ModifyIndex, n.ModifyIndex)
			}
			nodes[n.Node] = n
		}
		return true
	})
	out := make([]consulNode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b consulNode) int { return strings.Compare(a.Node, b.Node) })
	r.setConsulMeta(w, snap.Revision())
	writeJSON(w, http.StatusOK, out)
	return nil
}

// consulDatacenters serves GET /v1/catalog/datacenters: NetSel's one.
func (r *Registrar) consulDatacenters(w http.ResponseWriter, req *http.Request) error {
	writeJSON(w, http.StatusOK, []string{ConsulDatacenter})
	return nil
}
