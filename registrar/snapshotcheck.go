package registrar

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// snapshotServices checks a snapshot to restore and returns its services as
// records: the version this registrar writes, at most Limits.MaxServices
// services, each valid by the catalog's rules, with a VIP this registrar
// could have allocated (in VIPCIDR, neither its network nor its broadcast
// address), and no name or VIP twice. A service with no "created" time is
// created now. The first fault found is a 400
// naming the record's field, e.g. "services[3].vip".
func (r *Registrar) snapshotServices(doc *api.Snapshot) ([]*catalog.Service, error) {
	if doc.Version != api.SnapshotVersion {
		return nil, errBadRequest("version", "%d is not a snapshot version this registrar restores (want %d)", doc.Version, api.SnapshotVersion)
	}
	if doc.Services == nil {
		return nil, errBadRequest("services", "is required (an empty list restores nothing)")
	}
	if n, limit := len(doc.Services), r.cfg.Limits.MaxServices; n > limit {
		return nil, errBadRequest("services", "%d services, more than the registrar's limit of %d services", n, limit)
	}
	names := make(map[string]int, len(doc.Services))
	vips := make(map[netip.Addr]int, len(doc.Services))
	out := make([]*catalog.Service, len(doc.Services))
	now := time.Now().UTC()
	for i, s := range doc.Services {
		field := fmt.Sprintf("services[%d]", i)
		svc := &catalog.Service{Name: s.Name, VIP: s.VIP, Created: s.Created, Ports: make([]catalog.Port, len(s.Ports))}
		if svc.Created.IsZero() {
			svc.Created = now
		}
		for j, p := range s.Ports {
			svc.Ports[j] = catalog.Port{Name: p.Name, Port: p.Port, Protocol: p.Protocol}
		}
		if err := svc.Validate(); err != nil {
			var fe *catalog.FieldError
			if errors.As(err, &fe) {
				return nil, errBadRequest(field+"."+fe.Field, "service %q: %s", truncate(s.Name, 64), fe.Msg)
			}
			return nil, errBadRequest(field, "service %q: %v", truncate(s.Name, 64), err)
		}
		if !r.vips.allocatable(s.VIP) {
			return nil, errBadRequest(field+".vip", "service %s: VIP %s is not an address of the VIP range %s this registrar allocates from", s.Name, s.VIP, r.cfg.VIPCIDR)
		}
		if j, dup := names[s.Name]; dup {
			return nil, errBadRequest(field+".name", "service %s is in the snapshot twice (also services[%d])", s.Name, j)
		}
		if j, dup := vips[s.VIP]; dup {
			return nil, errBadRequest(field+".vip", "VIP %s of service %s is also the VIP of services[%d] (%s)", s.VIP, s.Name, j, doc.Services[j].Name)
		}
		names[s.Name], vips[s.VIP] = i, i
		out[i] = svc
	}
	return out, nil
}

// allocatable reports whether pick could return ip: an address of the
// range, with no zone, that is neither its network nor its IPv4 broadcast
// address.
func (a *allocator) allocatable(ip netip.Addr) bool {
	if ip.Zone() != "" || !a.prefix.Contains(ip) || ip == a.prefix.Addr() {
		return false
	}
	return a.broadcast == 0 || ip != addOffset(a.prefix.Addr(), a.broadcast)
}
