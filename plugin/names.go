package netsel

import (
	"strings"

	"github.com/netsel/netsel/catalog"
)

// nameKind says what a name inside a forward zone refers to.
type nameKind int

const (
	nameInvalid  nameKind = iota
	nameApex              // <zone>
	nameService           // <svc>.<zone>
	nameInstance          // <id>.<svc>.<zone>
	nameProto             // _<proto>.<svc>.<zone>, an empty non-terminal
	namePort              // _<port>._<proto>.<svc>.<zone>
)

// name is a parsed query name of a forward zone.
type name struct {
	kind    nameKind
	service string
	id      string // nameInstance
	port    string // namePort, without '_'
	proto   string // namePort, nameProto, without '_'
}

// parseName splits qname, lower-case and fully qualified, into the parts of
// zone's layout. It returns kind nameInvalid for names that cannot exist in
// the zone: outside it, too many labels, or labels that are not valid
// service names, instance ids or port names.
func parseName(qname, zone string) name {
	if !strings.HasSuffix(zone, ".") || !strings.HasSuffix(qname, zone) {
		return name{}
	}
	rest := qname[:len(qname)-len(zone)]
	if rest == "" {
		if qname == zone {
			return name{kind: nameApex}
		}
		return name{}
	}
	if zone != "." {
		// rest ends with the dot that separates it from the zone.
		if !strings.HasSuffix(rest, ".") {
			return name{} // e.g. "xnetsel." in zone "netsel."
		}
		rest = rest[:len(rest)-1]
	}

	// Labels from the right: service, then id or proto, then port.
	svc, rest, more := lastLabel(rest)
	if !catalog.ValidName(svc) {
		return name{}
	}
	if !more {
		return name{kind: nameService, service: svc}
	}
	second, rest, more := lastLabel(rest)
	if proto, ok := strings.CutPrefix(second, "_"); ok {
		if !validProto(proto) {
			return name{}
		}
		if !more {
			return name{kind: nameProto, service: svc, proto: proto}
		}
		third, _, more := lastLabel(rest)
		port, ok := strings.CutPrefix(third, "_")
		if !ok || more || !catalog.ValidName(port) {
			return name{}
		}
		return name{kind: namePort, service: svc, port: port, proto: proto}
	}
	if more || !catalog.ValidName(second) {
		return name{}
	}
	return name{kind: nameInstance, service: svc, id: second}
}

// lastLabel splits s into its last label and what comes before it; more
// reports whether there is a label before it (possibly empty).
func lastLabel(s string) (label, rest string, more bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return s, "", false
	}
	return s[i+1:], s[:i], true
}

func validProto(p string) bool { return p == catalog.ProtocolTCP || p == catalog.ProtocolUDP }

// isReverse reports whether zone is a reverse zone, answered with PTRs.
func isReverse(zone string) bool {
	return strings.HasSuffix(zone, "in-addr.arpa.") || strings.HasSuffix(zone, "ip6.arpa.")
}
