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

// KeyKind says which part of the keyspace a key belongs to.
type KeyKind int

// The kinds of key in the keyspace.
const (
	KindUnknown KeyKind = iota
	KindService
	KindVIP
	KindInstance
)

// Key is a parsed key.
type Key struct {
	Kind    KeyKind
	Service string     // KindService, KindInstance
	ID      string     // KindInstance
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
	case "instances":
		svc, id, ok := strings.Cut(rest, "/")
		if !ok || !ValidName(svc) || !ValidName(id) {
			return Key{}, false
		}
		return Key{Kind: KindInstance, Service: svc, ID: id}, true
	}
	return Key{}, false
}
