// Package api holds the JSON wire types of the registrar's REST API (/v1),
// shared by the server (package registrar) and its Go client (package
// registrar/client).
//
// Durations on the wire (ttl, wait) are Go duration strings such as "60s";
// requests may also give them as an integer number of seconds (60).
package api

import (
	"net/netip"
	"time"
)

// IndexHeader is the response header that carries the index (an etcd
// revision) a blocking query passes back as ?index= to wait for the next
// change.
const IndexHeader = "X-Netsel-Index"

// RegisterRequest is the body of POST /v1/services/{name}/instances.
type RegisterRequest struct {
	// ID names the instance within its service. It must be a DNS label.
	// When empty the registrar generates one; clients keep it and send it on
	// every later registration so that a re-registration replaces the
	// instance instead of adding a second one.
	ID string `json:"id,omitempty"`
	// Address is the instance's IP address (IPv4 or IPv6, no zone). When
	// empty the registrar fills in the address the request came from; a
	// multi-host registrar fills in its own host's address instead when
	// the request came over loopback, and refuses a loopback address, which
	// other hosts cannot reach.
	Address string `json:"address"`
	// Port is the instance's main port, 1-65535.
	Port int `json:"port"`
	// Ports are named ports (name -> real port). The first registration of
	// a service sets the service's ports: its named ports, or its one port
	// named "default" when it names none.
	Ports map[string]int `json:"ports,omitempty"`
	// Protocols declare what ports carry (port name -> "tcp", "udp",
	// "http", "h2c" or "grpc"; "default" names the main port of an
	// instance with no named ports). Like the ports, the first
	// registration of a service sets them; a port not named is "tcp". A
	// later registration that names a port's protocol must name the
	// service's (409 otherwise). Proxies balance http, h2c and grpc ports
	// per request and reach h2c and grpc instances over HTTP/2 cleartext.
	Protocols map[string]string `json:"protocols,omitempty"`
	// TTL is how long the instance lives after its last heartbeat, in
	// [5s, 1h]; zero means the registrar's default (60s).
	TTL Duration `json:"ttl,omitempty"`
	// Weight is the relative share of traffic, 1-65535; zero means 1.
	Weight int `json:"weight,omitempty"`
	// Tags and Meta are free-form labels carried to readers.
	Tags []string          `json:"tags,omitempty"`
	Meta map[string]string `json:"meta,omitempty"`
	// Zone is an optional locality label (a DNS label).
	Zone string `json:"zone,omitempty"`
	// Checks are active health checks one registrar runs against the
	// instance (see the README's Health section); at most 8.
	Checks []Check `json:"checks,omitempty"`
}

// Check is one active health check of an instance.
type Check struct {
	// Type is "http" (GET Path; 2xx passes, 429 warns, anything else
	// fails), "tcp" (a connection opens) or "grpc" (grpc.health.v1 says
	// SERVING).
	Type string `json:"type"`
	// Path is the HTTP check's path, "/" when empty.
	Path string `json:"path,omitempty"`
	// Port names the instance port to probe; empty means its main port.
	Port string `json:"port,omitempty"`
	// Service is the gRPC check's service name; empty asks for the
	// server's overall health.
	Service string `json:"service,omitempty"`
	// Interval between probes, 1s-1h (default 10s); Timeout of one probe,
	// 100ms up to the interval (default 2s or the interval).
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// Failures in a row make the check critical (default 3); Successes in
	// a row make it pass again (default 1). Each 1-100.
	Failures  int `json:"failures,omitempty"`
	Successes int `json:"successes,omitempty"`
}

// RegisterResponse is the answer to a registration: where the service can be
// reached and how long the instance lives without a heartbeat.
type RegisterResponse struct {
	// ID is the instance id, generated when the request had none.
	ID string `json:"id"`
	// Address is the address registered: the request's, or the one the
	// registrar filled in when the request had none. Clients send it on
	// every later registration of the instance.
	Address netip.Addr `json:"address"`
	// VIP is the service's stable virtual address.
	VIP netip.Addr `json:"vip"`
	// Port is the virtual port that forwards to this instance's main port.
	Port int `json:"port"`
	// Ports maps every service port name to its virtual port on VIP.
	Ports map[string]int `json:"ports"`
	// TTL is the instance's time to live after a heartbeat.
	TTL Duration `json:"ttl"`
	// Lease is the etcd lease that holds the instance (informational).
	Lease int64 `json:"lease"`
}

// HeartbeatResponse is the answer to PUT .../heartbeat.
type HeartbeatResponse struct {
	ID  string   `json:"id"`
	TTL Duration `json:"ttl"`
}

// Port is one port of a service: the virtual port on its VIP.
type Port struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// ServiceView is the answer to GET /v1/services/{name}: the service record
// and its live instances.
type ServiceView struct {
	Name      string         `json:"name"`
	VIP       netip.Addr     `json:"vip"`
	Ports     []Port         `json:"ports"`
	Created   time.Time      `json:"created"`
	Instances []InstanceView `json:"instances"`
	// Index is the etcd revision of the last change to the service or its
	// instances (also sent as the X-Netsel-Index header). A page read from
	// etcd (no ?stale, no ?index) knows only its own instances: its Index
	// may be lower than the service's, never higher.
	Index int64 `json:"index"`
	// Next is set when instances follow this page: ask for the next with
	// ?after=<Next>. Instances are in pages of ?limit= (default 1000, at
	// most 10000), sorted by ID.
	Next string `json:"next,omitempty"`
}

// InstanceView is one live instance of a service.
type InstanceView struct {
	ID         string            `json:"id"`
	Address    netip.Addr        `json:"address"`
	Port       int               `json:"port"`
	Ports      map[string]int    `json:"ports,omitempty"`
	Weight     int               `json:"weight"`
	Tags       []string          `json:"tags,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
	Zone       string            `json:"zone,omitempty"`
	Registered time.Time         `json:"registered"`
	// Host is the address of the host the instance registered from, as a
	// multi-host registrar saw it; absent when a single-host registrar
	// registered it.
	Host netip.Addr `json:"host,omitzero"`
	// State is "passing", "warning", "critical", "maintenance" or
	// "draining".
	State string `json:"state"`
	// Output is the last check output that changed the state, Since when
	// the state (from checks, maintenance or drain) began; Reason is the
	// maintenance reason.
	Output string    `json:"output,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Checks are the instance's checks, with defaults filled in.
	Checks []Check `json:"checks,omitempty"`
}

// ServiceSummary is one entry of GET /v1/services.
type ServiceSummary struct {
	Name      string     `json:"name"`
	VIP       netip.Addr `json:"vip"`
	Ports     []Port     `json:"ports"`
	Instances int        `json:"instances"`
	Index     int64      `json:"index"`
}

// ServiceList is the answer to GET /v1/services, sorted by name.
type ServiceList struct {
	Services []ServiceSummary `json:"services"`
	// Index is the revision of the registrar's view (also the
	// X-Netsel-Index header).
	Index int64 `json:"index"`
}

// Health is the answer to GET /v1/health.
type Health struct {
	// Status is "ok"; "degraded" (HTTP 200) while etcd has raised an alarm
	// that refuses new registrations but still serves heartbeats and reads
	// (NOSPACE); or "unavailable" (HTTP 503) while etcd does not answer, has
	// raised CORRUPT, or the index is still reading the keyspace.
	Status string `json:"status"`
	Etcd   string `json:"etcd"`  // "ok" or the error reaching etcd
	Index  string `json:"index"` // "synced" or "syncing"
	// Revision is the revision of the registrar's index.
	Revision int64 `json:"revision"`
	// Alarms are the etcd alarms raised (NOSPACE, CORRUPT), with Cause
	// saying what they mean for NetSel.
	Alarms []string `json:"alarms,omitempty"`
	Cause  string   `json:"cause,omitempty"`
}

// Error is the body of every error response. Field names the request field
// at fault, when there is one (e.g. "port", "ports.http", "ttl", "body").
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}
