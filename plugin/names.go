package netsel

import (
	"slices"
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
	nameTagRoot           // _tag.<svc>.<zone>, above the tag names
	nameTag               // _<tag>[._<tag>...]._tag.<svc>.<zone>
)

// tagLabel is the second label of the tag names: not a protocol (those are
// tcp and udp), not an instance id (ids have no underscore).
const tagLabel = "_tag"

// name is a parsed query name of a forward zone.
type name struct {
	kind    nameKind
	service string
	id      string // nameInstance
	port    string // namePort, without '_'
	proto   string // namePort, nameProto, without '_'
	// tags are the tag labels of nameTag as asked, each with its '_':
	// "_v2._canary". See splitTags.
	tags string
}

// parseName splits qname, lower-case and fully qualified, into the parts of
// zone's layout. It returns kind nameInvalid for names that cannot exist in
// the zone: outside it, too many labels, or labels that are not valid
// service names, instance ids, port names or tag labels.
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
	if second == tagLabel {
		if !more {
			return name{kind: nameTagRoot, service: svc}
		}
		if !validTagLabels(rest) {
			return name{}
		}
		return name{kind: nameTag, service: svc, tags: rest}
	}
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

// maxTagLabel is the longest tag a DNS name can ask for: a label is at most
// 63 bytes, one of them the '_'.
const maxTagLabel = 62

// validTagLabels reports whether s is one or more labels "_<tag>" joined by
// dots, each tag 1-62 bytes of a-z, 0-9, '-' and '_' (names are lower-cased
// before parsing; a label with any other byte, which a name carries escaped,
// asks for no tag DNS can reach).
func validTagLabels(s string) bool {
	for s != "" {
		label, rest, _ := strings.Cut(s, ".")
		tag, ok := strings.CutPrefix(label, "_")
		if !ok || tag == "" || len(tag) > maxTagLabel {
			return false
		}
		for i := 0; i < len(tag); i++ {
			if c := tag[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
		if rest == "" && len(label) != len(s) {
			return false // a trailing empty label
		}
		s = rest
	}
	return true
}

// splitTags returns the distinct tags of a nameTag's labels, without their
// '_', sorted: a name may repeat a tag, and the order of labels does not
// matter (all of them are required).
func splitTags(labels string) []string {
	tags := strings.Split(labels, ".")
	for i, t := range tags {
		tags[i] = t[1:]
	}
	slices.Sort(tags)
	return slices.Compact(tags)
}

func validProto(p string) bool { return p == catalog.ProtocolTCP || p == catalog.ProtocolUDP }

// isReverse reports whether zone is a reverse zone, answered with PTRs.
func isReverse(zone string) bool {
	return strings.HasSuffix(zone, "in-addr.arpa.") || strings.HasSuffix(zone, "ip6.arpa.")
}
