package catalog

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultPrefix is the keyspace prefix used when none is configured.
const DefaultPrefix = "/netsel/"

// Keyspace builds and parses the etcd keys under one prefix.
// The zero value is not usable; use NewKeyspace.
type Keyspace struct {
	prefix string
}

// NewKeyspace returns the keyspace rooted at prefix, which must start and end
// with '/'. An empty prefix means DefaultPrefix.
func NewKeyspace(prefix string) (Keyspace, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return Keyspace{}, &FieldError{Field: "prefix", Msg: fmt.Sprintf("%q must start and end with '/'", prefix)}
	}
	if strings.Contains(prefix, "//") {
		return Keyspace{}, &FieldError{Field: "prefix", Msg: fmt.Sprintf("%q has an empty path segment", prefix)}
	}
	return Keyspace{prefix: prefix}, nil
}

// MustKeyspace is NewKeyspace for prefixes known to be valid; it panics otherwise.
func MustKeyspace(prefix string) Keyspace {
	ks, err := NewKeyspace(prefix)
	if err != nil {
		panic(err)
	}
	return ks
}

// Prefix returns the root of the keyspace, e.g. "/netsel/".
func (k Keyspace) Prefix() string { return k.prefix }

// ServicesPrefix returns the prefix of every service key.
func (k Keyspace) ServicesPrefix() string { return k.prefix + "services/" }

// ServiceKey returns the key of service name.
func (k Keyspace) ServiceKey(name string) string { return k.prefix + "services/" + name }

// VIPsPrefix returns the prefix of every VIP reservation.
func (k Keyspace) VIPsPrefix() string { return k.prefix + "vips/" }

// VIPKey returns the key that reserves ip.
func (k Keyspace) VIPKey(ip netip.Addr) string { return k.prefix + "vips/" + ip.String() }

// InstancesPrefix returns the prefix of every instance key.
func (k Keyspace) InstancesPrefix() string { return k.prefix + "instances/" }

// ServiceInstancesPrefix returns the prefix of the instances of service name.
func (k Keyspace) ServiceInstancesPrefix(name string) string {
	return k.prefix + "instances/" + name + "/"
}

// InstanceKey returns the key of instance id of service name.
func (k Keyspace) InstanceKey(name, id string) string {
	return k.prefix + "instances/" + name + "/" + id
}

// HealthKey returns the key of the check state of instance id of service
// name; it lives under the instance's lease.
func (k Keyspace) HealthKey(name, id string) string {
	return k.prefix + "health/" + name + "/" + id
}

// MaintenanceKey returns the key that puts instance id of service name in
// maintenance; it lives under the instance's lease.
func (k Keyspace) MaintenanceKey(name, id string) string {
	return k.prefix + "maintenance/" + name + "/" + id
}

// DrainKey returns the key that marks instance id of service name as
// draining; it lives under the instance's lease.
func (k Keyspace) DrainKey(name, id string) string {
	return k.prefix + "drain/" + name + "/" + id
}

// MembersPrefix returns the prefix of every live registrar's key.
func (k Keyspace) MembersPrefix() string { return k.prefix + "registrars/" }

// MemberKey returns the key of the registrar id.
func (k Keyspace) MemberKey(id string) string { return k.prefix + "registrars/" + id }

// ReadersPrefix returns the prefix of the readers' keys. It is a sibling of
// the keyspace, not inside it ("/netsel/" has "/netsel.readers/"): readers
// watch the keyspace, and one reader's report must not wake the others.
func (k Keyspace) ReadersPrefix() string {
	return strings.TrimSuffix(k.prefix, "/") + ".readers/"
}

// ReaderKey returns the key of reader id.
func (k Keyspace) ReaderKey(id string) string { return k.ReadersPrefix() + id }

// KeyKind says which part of the keyspace a key belongs to.
type KeyKind int

// The kinds of key in the keyspace.
const (
	KindUnknown KeyKind = iota
	KindService
	KindVIP
	KindInstance
	KindHealth      // an instance's check state
	KindMaintenance // an instance in maintenance
	KindDrain       // an instance draining
	KindMember      // a live registrar
)

// Key is a parsed key.
type Key struct {
	Kind    KeyKind
	Service string     // KindService and the kinds of an instance
	ID      string     // the kinds of an instance, KindMember
	VIP     netip.Addr // KindVIP
}

// ParseKey parses a key of this keyspace. It returns false for keys outside
// the keyspace or with invalid names, which readers skip.
func (k Keyspace) ParseKey(key string) (Key, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return Key{}, false
	}
	kind, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Key{}, false
	}
	switch kind {
	case "services":
		if !ValidName(rest) {
			return Key{}, false
		}
		return Key{Kind: KindService, Service: rest}, true
	case "vips":
		ip, err := netip.ParseAddr(rest)
		if err != nil || ip.Zone() != "" {
			return Key{}, false
		}
		return Key{Kind: KindVIP, VIP: ip}, true
	case "instances", "health", "maintenance", "drain":
		svc, id, ok := strings.Cut(rest, "/")
		if !ok || !ValidName(svc) || !ValidName(id) {
			return Key{}, false
		}
		return Key{Kind: instanceKinds[kind], Service: svc, ID: id}, true
	case "registrars":
		if !ValidName(rest) {
			return Key{}, false
		}
		return Key{Kind: KindMember, ID: rest}, true
	}
	return Key{}, false
}

var instanceKinds = map[string]KeyKind{
	"instances":   KindInstance,
	"health":      KindHealth,
	"maintenance": KindMaintenance,
	"drain":       KindDrain,
}
