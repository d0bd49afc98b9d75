package registrar

import (
	"slices"
	"strings"

	"github.com/netsel/netsel/catalog"
)

// servicePorts returns the ports a service gets from its first instance:
// one virtual port per named port, numbered as the instance's, or a single
// port named "default" when the instance names none.
func servicePorts(in *catalog.Instance) []catalog.Port {
	if len(in.Ports) == 0 {
		return []catalog.Port{{Name: catalog.DefaultPortName, Port: in.Port, Protocol: catalog.ProtocolTCP}}
	}
	ports := make([]catalog.Port, 0, len(in.Ports))
	for name, p := range in.Ports {
		ports = append(ports, catalog.Port{Name: name, Port: p, Protocol: catalog.ProtocolTCP})
	}
	slices.SortFunc(ports, func(a, b catalog.Port) int { return strings.Compare(a.Name, b.Name) })
	return ports
}

// checkPorts reports whether in serves exactly the ports of svc: every
// service port must be one of the instance's named ports (or "default",
// served by its main port), and every named port of the instance must be a
// service port. A mismatch is a 409 naming the port.
func checkPorts(svc *catalog.Service, in *catalog.Instance) error {
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
	return nil
}

// virtualPorts returns the service's ports by name, and the virtual port
// that reaches in's main port: "default" when the service has it, else the
// service port the instance serves on its main port, else the first.
func virtualPorts(svc *catalog.Service, in *catalog.Instance) (int, map[string]int) {
	m := make(map[string]int, len(svc.Ports))
	main := 0
	for _, p := range svc.Ports {
		m[p.Name] = p.Port
		if p.Name == catalog.DefaultPortName {
			main = p.Port
		}
	}
	if main == 0 {
		for _, p := range svc.Ports {
			if in.Ports[p.Name] == in.Port {
				main = p.Port
				break
			}
		}
	}
	if main == 0 && len(svc.Ports) > 0 {
		main = svc.Ports[0].Port
	}
	return main, m
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
