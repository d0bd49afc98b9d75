package api

import "time"

// MaintenanceRequest is the body of PUT
// /v1/services/{name}/instances/{id}/maintenance (optional: no body means
// no reason).
type MaintenanceRequest struct {
	// Reason says why, for operators; at most 256 bytes.
	Reason string `json:"reason,omitempty"`
}

// DrainResponse is the answer to POST
// /v1/services/{name}/instances/{id}/drain.
type DrainResponse struct {
	// Confirmed is true when every live reader confirmed the drain before
	// the timeout: it serves a catalog revision at or after Revision (so
	// sends the instance no new traffic) and, with ?wait=connections,
	// holds no open connection to it.
	Confirmed bool `json:"confirmed"`
	// Ended says why the wait ended unconfirmed: "timeout", or "shutdown"
	// when the registrar stopped first.
	Ended string `json:"ended,omitempty"`
	// Revision is the etcd revision that marked the instance draining.
	Revision int64 `json:"revision"`
	// Readers counts the live readers when the wait ended.
	Readers int `json:"readers"`
	// Pending lists the readers that had not confirmed when the wait
	// ended (empty when Confirmed).
	Pending []ReaderView `json:"pending,omitempty"`
	// Waited is how long the wait for the readers took.
	Waited Duration `json:"waited"`
	// Deregistered is true when the drain then removed the instance; false
	// with ?deregister=false, when the instance had already gone, or when
	// its id was registered again during the drain (a new process: that
	// registration stays, and takes traffic).
	Deregistered bool `json:"deregistered"`
}

// ReaderView is one live reader of the catalog: a CoreDNS with the NetSel
// plugin ("dns") or a Caddy with the NetSel app ("proxy").
type ReaderView struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Host string `json:"host,omitempty"`
	// Revision is the etcd revision of the catalog the reader serves.
	Revision int64 `json:"revision"`
	// Updated is when the reader last reported.
	Updated time.Time `json:"updated"`
	// Connections counts its open connections (and HTTP requests in
	// flight) per instance, keyed "<service>/<id>"; instances with none
	// are left out.
	Connections map[string]int `json:"connections,omitempty"`
	// AnswerTTL is, for a DNS reader, the TTL of its answers: a drain
	// waits this long after marking the instance, since a client may act
	// on an answer it got just before.
	AnswerTTL Duration `json:"answer_ttl,omitempty"`
}

// ReaderList is the answer to GET /v1/readers, sorted by ID.
type ReaderList struct {
	Readers []ReaderView `json:"readers"`
	// Index is the etcd revision read at.
	Index int64 `json:"index"`
}
