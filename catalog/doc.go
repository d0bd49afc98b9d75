// Package catalog is the one package that knows NetSel's etcd keyspace.
//
// It encodes and decodes keys and values (see Keyspace, Service and
// Instance), validates names, and keeps Index: a watch-fed, in-memory view of
// the whole keyspace that readers query through immutable Snapshots. The
// registrar, the CoreDNS plugin and the Caddy modules all read etcd through
// this package and nothing else.
//
// The layout, with the default prefix "/netsel/":
//
//	/netsel/services/<name>        Service JSON, persistent
//	/netsel/vips/<ip>              the owning service's name, persistent
//	/netsel/instances/<name>/<id>  Instance JSON, attached to the instance's lease
package catalog
