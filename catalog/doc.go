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
//	/netsel/health/<name>/<id>     Health JSON (check state), same lease
//	/netsel/maintenance/<name>/<id> Maintenance JSON, same lease
//	/netsel/drain/<name>/<id>      Drain JSON, same lease
//	/netsel/registrars/<id>        Member JSON, attached to the registrar's lease
//	/netsel.readers/<id>           Reader JSON, attached to the reader's lease
//	                               (beside the keyspace: readers do not watch it)
package catalog
