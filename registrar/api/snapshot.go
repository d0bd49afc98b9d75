package api

import (
	"net/netip"
	"time"
)

// SnapshotVersion is the version of the snapshot document this API writes
// and the only one it restores.
const SnapshotVersion = 1

// Snapshot is the document of GET /v1/backup and the body of PUT
// /v1/backup: NetSel's persistent state, the services with their VIPs and
// ports. Each service holds the reservation of its VIP, which a restore
// writes back with it. Live state — instances, their health, maintenance
// and drains, the registrars' membership, the readers — is not part of it:
// instances register again, and get their service's VIP back.
type Snapshot struct {
	// Version is SnapshotVersion.
	Version int `json:"version"`
	// Taken is when the registrar read the keyspace.
	Taken time.Time `json:"taken"`
	// Revision is the etcd revision read.
	Revision int64 `json:"revision"`
	// Services are sorted by name.
	Services []SnapshotService `json:"services"`
	// Skipped lists the stored records that did not decode and are not in
	// the snapshot (empty when every record is); a restore ignores it.
	Skipped []string `json:"skipped,omitempty"`
}

// SnapshotService is one service of a Snapshot: its record as stored.
type SnapshotService struct {
	Name    string     `json:"name"`
	VIP     netip.Addr `json:"vip"`
	Ports   []Port     `json:"ports"`
	Created time.Time  `json:"created"`
}

// RestoreResponse is the answer to PUT /v1/backup.
type RestoreResponse struct {
	// Services counts the services written.
	Services int `json:"services"`
	// Replaced lists the services that existed before a forced restore
	// and were overwritten by the snapshot's record (possibly with
	// another VIP or ports).
	Replaced []string `json:"replaced,omitempty"`
	// Revision is the etcd revision of the restore.
	Revision int64 `json:"revision"`
}
