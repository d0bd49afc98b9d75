package catalog

import (
	"encoding/json"
	"fmt"
	"time"
)

// Member is a live registrar, under its own lease: registrars share the
// checking of instances among the members they see.
type Member struct {
	// ID names the registrar; a DNS label unique among live registrars.
	ID string `json:"id"`
	// Addr is the registrar's API address, for operators.
	Addr    string    `json:"addr,omitempty"`
	Started time.Time `json:"started"`

	Lease int64 `json:"-"`
}

// EncodeMember returns the stored form of m.
func EncodeMember(m *Member) ([]byte, error) { return json.Marshal(m) }

// DecodeMember decodes and checks a member value.
func DecodeMember(b []byte) (*Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode member: %w", err)
	}
	if err := CheckName("id", m.ID); err != nil {
		return nil, fmt.Errorf("decode member: %w", err)
	}
	return &m, nil
}

// Reader is a live CoreDNS or Caddy process reading the catalog. It keeps
// its key, under its own lease, outside the watched keyspace (see
// Keyspace.ReadersPrefix), so that its writes wake no other reader.
type Reader struct {
	// ID names the reader: unique per process.
	ID string `json:"id"`
	// Kind is "dns" (the CoreDNS plugin) or "proxy" (the Caddy app).
	Kind string `json:"kind"`
	// Host names the machine the reader runs on, for operators.
	Host string `json:"host,omitempty"`
	// Revision is the etcd revision of the catalog snapshot the reader
	// serves: every change at or below it is in its answers.
	Revision int64 `json:"revision"`
	// Updated is when the reader wrote the key.
	Updated time.Time `json:"updated"`
	// Connections counts the open proxied connections (and HTTP requests
	// in flight) per instance, keyed "<service>/<id>"; instances with none
	// are left out.
	Connections map[string]int `json:"connections,omitempty"`
	// AnswerTTL is, for a DNS reader, the TTL in seconds of the answers it
	// gives: a client may act on an answer this long after it got it, so
	// a drain waits this long after marking the instance.
	AnswerTTL int64 `json:"answer_ttl,omitempty"`

	Lease int64 `json:"-"`
}

// Reader kinds.
const (
	ReaderDNS   = "dns"
	ReaderProxy = "proxy"
)

// EncodeReader returns the stored form of r.
func EncodeReader(r *Reader) ([]byte, error) { return json.Marshal(r) }

// DecodeReader decodes and checks a reader value. It keeps the
// MaxReportedConnections busiest instances of Connections, so that a
// hostile reader's report cannot grow what the registrar holds and serves.
func DecodeReader(b []byte) (*Reader, error) {
	var r Reader
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode reader: %w", err)
	}
	if err := CheckName("id", r.ID); err != nil {
		return nil, fmt.Errorf("decode reader: %w", err)
	}
	r.Connections = boundConnections(r.Connections)
	return &r, nil
}

// ConnectionKey is the key of an instance in Reader.Connections.
func ConnectionKey(service, id string) string { return service + "/" + id }
