package registrar

import (
	"maps"
	"slices"
	"strings"

	"github.com/netsel/netsel/catalog"
	"github.com/netsel/netsel/registrar/api"
)

// portProtocols checks the protocols of a registration: each names one of
// its ports ("default" for its main port when it names none) and is one
// of catalog's protocols, and ports that share a number and a transport
// (one VIP port) carry the same protocol. Every error is a 400 naming the
// field.
func portProtocols(body *api.RegisterRequest) (map[string]string, error) {
	if len(body.Protocols) == 0 {
		return nil, nil
	}
	if len(body.Protocols) > maxPorts {
		return nil, errBadRequest("protocols", "more than %d ports", maxPorts)
	}
	for _, name := range slices.Sorted(maps.Keys(body.Protocols)) {
		proto := body.Protocols[name]
		_, named := body.Ports[name]
		if !named && (len(body.Ports) > 0 || name != catalog.DefaultPortName) {
			return nil, errBadRequest("protocols", "%q is not a port of the registration (%s)", truncate(name, 64), registeredPorts(body))
		}
		if !catalog.ValidProtocol(proto) {
			return nil, errBadRequest("protocols."+name, "%q is not tcp, udp, http, h2c or grpc", truncate(proto, 32))
		}
	}
	ports := servicePorts(&catalog.Instance{Port: body.Port, Ports: body.Ports}, body.Protocols)
	for i, p := range ports {
		for _, q := range ports[:i] {
			if q.Port == p.Port && q.Transport() == p.Transport() && q.Protocol != p.Protocol {
				return nil, errBadRequest("protocols."+p.Name, "port %d carries %s as port %q: one VIP port carries one protocol", p.Port, q.Protocol, q.Name)
			}
		}
	}
	return body.Protocols, nil
}

func registeredPorts(body *api.RegisterRequest) string {
	if len(body.Ports) == 0 {
		return "it names no ports: its main port is \"default\""
	}
	return "ports: " + strings.Join(slices.Sorted(maps.Keys(body.Ports)), ", ")
}

// servicePorts returns the ports a service gets from its first instance:
// one virtual port per named port, numbered as the instance's, or a single
// port named "default" when the instance names none, each carrying the
// protocol protos names for it (default tcp).
func servicePorts(in *catalog.Instance, protos map[string]string) []catalog.Port {
	proto := func(name string) string {
		if p, ok := protos[name]; ok {
			return p
		}
		return catalog.ProtocolTCP
	}
	if len(in.Ports) == 0 {
		return []catalog.Port{{Name: catalog.DefaultPortName, Port: in.Port, Protocol: proto(catalog.DefaultPortName)}}
	}
	ports := make([]catalog.Port, 0, len(in.Ports))
	for name, p := range in.Ports {
		ports = append(ports, catalog.Port{Name: name, Port: p, Protocol: proto(name)})
	}
	slices.SortFunc(ports, func(a, b catalog.Port) int { return strings.Compare(a.Name, b.Name) })
	return ports
}

// checkPorts reports whether in serves exactly the ports of svc: every
// service port must be one of the instance's named ports (or "default",
// served by its main port), every named port of the instance must be a
// service port, and each protocol protos names must be its port's. A
// mismatch is a 409 naming the port.
func checkPorts(svc *catalog.Service, in *catalog.Instance, protos map[string]string) error {
	for _, p := range svc.Ports {
		if _, ok := in.Ports[p.Name]; !ok && p.Name != catalog.DefaultPortName {
			return errConflict("ports."+p.Name, "service %s has port %q, which this instance does not name (service ports: %s)", svc.Name, p.Name, portNames(svc))
		}
	}
	for name := range in.Ports {
		if _, ok := svc.Port(name); !ok {
			return errConflict("ports."+name, "service %s has no port %q (service ports: %s)", svc.Name, name, portNames(svc))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(protos)) {
		if p, ok := svc.Port(name); ok && p.Protocol != protos[name] {
			return errConflict("protocols."+name, "service %s port %q carries %s, set by its first registration, not %s", svc.Name, name, p.Protocol, protos[name])
		}
	}
	return nil
}

// virtualPorts returns the service's ports by name, and the virtual port
// that reaches in's main port: "default" when the service has it, else the
// service port the instance serves on its main port, else the first.
func virtualPorts(svc *catalog.Service, in *catalog.Instance) (int, map[string]int) {
	m := make(map[string]int, len(svc.Ports))
	for _, p := range svc.Ports {
		m[p.Name] = p.Port
	}
	if p, ok := svc.MainPort(in); ok {
		return p.Port, m
	}
	if len(svc.Ports) > 0 {
		return svc.Ports[0].Port, m
	}
	return 0, m
}

func portNames(svc *catalog.Service) string {
	s := ""
	for i, p := range svc.Ports {
		if i > 0 {
			s += ", "
		}
		s += p.Name
	}
	return s
}
