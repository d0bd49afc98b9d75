package registrar

import (
	"strconv"

	"github.com/netsel/netsel/catalog"
)

// The JSON of Consul's answers, with Consul's field names, as far as NetSel
// fills them in. A NetSel instance is a Consul service instance on the node
// named by the instance's host (its address on a single-host registrar).

// consulNode is a node, as in /v1/catalog/nodes and /v1/health/service.
type consulNode struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     int64
	ModifyIndex     int64
}

// consulWeights are an instance's DNS SRV weights when passing and warning.
type consulWeights struct {
	Passing int
	Warning int
}

// consulAgentService is the Service of a /v1/health/service entry.
type consulAgentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	Weights           consulWeights
	EnableTagOverride bool
	Datacenter        string
	CreateIndex       int64
	ModifyIndex       int64
}

// consulCheck is a health check of a /v1/health/service entry.
type consulCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	CreateIndex int64
	ModifyIndex int64
}

// consulServiceEntry is one instance of /v1/health/service/{name}.
type consulServiceEntry struct {
	Node    consulNode
	Service consulAgentService
	Checks  []consulCheck
}

// consulCatalogService is one instance of /v1/catalog/service/{name}.
type consulCatalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           consulWeights
	ServiceEnableTagOverride bool
	CreateIndex              int64
	ModifyIndex              int64
}

// nodeName is the Consul node of in: the host it registered from, or its
// own address when no host was recorded.
func nodeName(in *catalog.Instance) string {
	if in.Host.IsValid() {
		return in.Host.String()
	}
	return in.Address.String()
}

// consulNodeOf is the node in runs on.
func consulNodeOf(in *catalog.Instance) consulNode {
	n := nodeName(in)
	return consulNode{
		Node:            n,
		Address:         n,
		Datacenter:      ConsulDatacenter,
		TaggedAddresses: map[string]string{"lan": n, "wan": n},
		Meta:            map[string]string{},
		CreateIndex:     in.ModRevision,
		ModifyIndex:     in.ModRevision,
	}
}

// consulMeta is in's meta, plus what NetSel knows that Consul has no field
// for, where the instance's own meta does not use the key: netsel_state,
// netsel_zone, netsel_vip (the service's VIP) and netsel_port_<name> for
// each named port.
func consulMeta(e *catalog.Entry, in *catalog.Instance) map[string]string {
	m := make(map[string]string, len(in.Meta)+3+len(in.Ports))
	add := func(k, v string) {
		if _, taken := in.Meta[k]; !taken && v != "" {
			m[k] = v
		}
	}
	add("netsel_state", in.State())
	add("netsel_zone", in.Zone)
	if e.Service != nil && e.Service.VIP.IsValid() {
		add("netsel_vip", e.Service.VIP.String())
	}
	for name, p := range in.Ports {
		add("netsel_port_"+name, strconv.Itoa(p))
	}
	for k, v := range in.Meta {
		m[k] = v
	}
	return m
}

// tagsOf is in's tags, never nil (Consul answers [], not null).
func tagsOf(in *catalog.Instance) []string {
	if in.Tags == nil {
		return []string{}
	}
	return in.Tags
}

// consulCatalogServiceOf is in, an instance of e, as the catalog shows it.
func consulCatalogServiceOf(e *catalog.Entry, in *catalog.Instance) consulCatalogService {
	n := consulNodeOf(in)
	return consulCatalogService{
		Node:            n.Node,
		Address:         n.Address,
		Datacenter:      ConsulDatacenter,
		TaggedAddresses: n.TaggedAddresses,
		NodeMeta:        n.Meta,
		ServiceID:       in.ID,
		ServiceName:     e.Name,
		ServiceAddress:  in.Address.String(),
		ServiceTags:     tagsOf(in),
		ServiceMeta:     consulMeta(e, in),
		ServicePort:     in.Port,
		ServiceWeights:  consulWeights{Passing: in.Weight, Warning: in.Weight},
		CreateIndex:     in.ModRevision,
		ModifyIndex:     in.ModRevision,
	}
}

// consulServiceEntryOf is in, an instance of e, as the health endpoint
// shows it.
func consulServiceEntryOf(e *catalog.Entry, in *catalog.Instance) consulServiceEntry {
	return consulServiceEntry{
		Node: consulNodeOf(in),
		Service: consulAgentService{
			ID:          in.ID,
			Service:     e.Name,
			Tags:        tagsOf(in),
			Meta:        consulMeta(e, in),
			Port:        in.Port,
			Address:     in.Address.String(),
			Weights:     consulWeights{Passing: in.Weight, Warning: in.Weight},
			Datacenter:  ConsulDatacenter,
			CreateIndex: in.ModRevision,
			ModifyIndex: in.ModRevision,
		},
		Checks: consulChecks(e, in),
	}
}
