package catalog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// DefaultPortName names the port of a service registered with a single port.
const DefaultPortName = "default"

// Protocols a service port may carry. HTTP, H2C and GRPC ports are TCP
// ports whose traffic is HTTP: HTTP/1.1, HTTP/2 over cleartext (prior
// knowledge), and gRPC (HTTP/2 over cleartext). Proxies balance them per
// request rather than per connection.
const (
	ProtocolTCP  = "tcp"
	ProtocolUDP  = "udp"
	ProtocolHTTP = "http"
	ProtocolH2C  = "h2c"
	ProtocolGRPC = "grpc"
)

// ValidProtocol reports whether p is one of the port protocols.
func ValidProtocol(p string) bool {
	switch p {
	case ProtocolTCP, ProtocolUDP, ProtocolHTTP, ProtocolH2C, ProtocolGRPC:
		return true
	}
	return false
}

// Port is one named port of a service: the virtual port on the service VIP.
type Port struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// Transport returns the port's transport protocol: ProtocolUDP for a UDP
// port, else ProtocolTCP (HTTP, h2c and gRPC run over TCP).
func (p Port) Transport() string {
	if p.Protocol == ProtocolUDP {
		return ProtocolUDP
	}
	return ProtocolTCP
}

// PerRequest reports whether the port carries HTTP (http, h2c or grpc),
// which proxies balance per request.
func (p Port) PerRequest() bool {
	return p.Protocol == ProtocolHTTP || p.Protocol == ProtocolH2C || p.Protocol == ProtocolGRPC
}

// HTTP2 reports whether the port's instances speak HTTP/2 over cleartext
// (h2c or grpc) rather than HTTP/1.1.
func (p Port) HTTP2() bool {
	return p.Protocol == ProtocolH2C || p.Protocol == ProtocolGRPC
}

// Service is the persistent record of a service: its stable VIP and ports.
type Service struct {
	Name    string     `json:"name"`
	VIP     netip.Addr `json:"vip"`
	Ports   []Port     `json:"ports"`
	Created time.Time  `json:"created"`

	// ModRevision is the etcd revision that last wrote the record. It is
	// filled in by readers and never encoded.
	ModRevision int64 `json:"-"`
}

// Port returns the port named name.
func (s *Service) Port(name string) (Port, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// MainPort returns the port of s that in serves at its main port: the
// service's "default", else the one in numbers as its main port. A nil
// s (an entry without its service record) has none.
func (s *Service) MainPort(in *Instance) (Port, bool) {
	if s == nil {
		return Port{}, false
	}
	if p, ok := s.Port(DefaultPortName); ok {
		return p, true
	}
	for _, p := range s.Ports {
		if n, ok := in.Ports[p.Name]; ok && n == in.Port {
			return p, true
		}
	}
	return Port{}, false
}

// Instance is one live instance of a service, stored under the instance's lease.
type Instance struct {
	ID         string            `json:"id"`
	Service    string            `json:"service"`
	Address    netip.Addr        `json:"address"`
	Port       int               `json:"port"`
	Ports      map[string]int    `json:"ports,omitempty"`
	Weight     int               `json:"weight"`
	Tags       []string          `json:"tags,omitempty"`
	Meta       map[string]string `json:"meta,omitempty"`
	Zone       string            `json:"zone,omitempty"`
	Registered time.Time         `json:"registered"`
	// Host is the address of the host the instance registered from, as
	// a multi-host registrar saw it: the registration's remote address, or
	// the registrar's own host address when the registration came over
	// loopback. It is zero, and absent from the record, when a
	// single-host registrar (or one older than the field) stored it.
	Host netip.Addr `json:"host,omitzero"`
	// Checks are the instance's active health checks, with defaults
	// filled in by the registrar.
	Checks []Check `json:"checks,omitempty"`

	// Health, Maintenance and Drain come from the instance's own keys
	// beside it (under the same lease), filled in by readers; nil when
	// absent. See State.
	Health      *Health      `json:"-"`
	Maintenance *Maintenance `json:"-"`
	Drain       *Drain       `json:"-"`

	// Lease is the etcd lease the key is attached to and ModRevision the
	// revision that last wrote it. Both are filled in by readers.
	Lease       int64 `json:"-"`
	ModRevision int64 `json:"-"`
}

// PortFor returns the real port of the instance for the service port named
// name: its own port of that name, or its main port for DefaultPortName or
// when it names no ports at all.
func (in *Instance) PortFor(name string) (int, bool) {
	if p, ok := in.Ports[name]; ok {
		return p, true
	}
	if name == DefaultPortName || len(in.Ports) == 0 {
		return in.Port, true
	}
	return 0, false
}

// Limits on instance values.
const (
	MaxWeight    = 65535
	MaxTags      = 64
	MaxMetaPairs = 64
)

// EncodeService returns the stored form of s.
func EncodeService(s *Service) ([]byte, error) { return json.Marshal(s) }

// EncodeInstance returns the stored form of in.
func EncodeInstance(in *Instance) ([]byte, error) { return json.Marshal(in) }

// DecodeService decodes and checks a service value. Unknown fields are
// ignored so that an older reader accepts a newer writer's values.
func DecodeService(b []byte) (*Service, error) {
	var s Service
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode service: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("decode service: %w", err)
	}
	return &s, nil
}

// Validate checks the fields of s.
func (s *Service) Validate() error {
	if err := CheckName("name", s.Name); err != nil {
		return err
	}
	if !s.VIP.IsValid() {
		return &FieldError{Field: "vip", Msg: "is required"}
	}
	if len(s.Ports) == 0 {
		return &FieldError{Field: "ports", Msg: "needs at least one port"}
	}
	seen := make(map[string]bool, len(s.Ports))
	for i, p := range s.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		if err := CheckName(field+".name", p.Name); err != nil {
			return err
		}
		if seen[p.Name] {
			return &FieldError{Field: field + ".name", Msg: fmt.Sprintf("%q is used twice", p.Name)}
		}
		seen[p.Name] = true
		if err := CheckPort(field+".port", p.Port); err != nil {
			return err
		}
		if !ValidProtocol(p.Protocol) {
			return &FieldError{Field: field + ".protocol", Msg: fmt.Sprintf("%q is not tcp, udp, http, h2c or grpc", p.Protocol)}
		}
	}
	return nil
}

// DecodeInstance decodes and checks an instance value. Unknown fields are
// ignored; a weight of 0 (absent) reads as 1.
func DecodeInstance(b []byte) (*Instance, error) {
	var in Instance
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("decode instance: %w", err)
	}
	if in.Weight == 0 {
		in.Weight = 1
	}
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("decode instance: %w", err)
	}
	return &in, nil
}

// Validate checks the fields of in.
func (in *Instance) Validate() error {
	if err := CheckName("id", in.ID); err != nil {
		return err
	}
	if err := CheckName("service", in.Service); err != nil {
		return err
	}
	if !in.Address.IsValid() {
		return &FieldError{Field: "address", Msg: "is required"}
	}
	if in.Address.Zone() != "" {
		return &FieldError{Field: "address", Msg: "must not carry an IPv6 zone"}
	}
	if in.Host.Zone() != "" {
		return &FieldError{Field: "host", Msg: "must not carry an IPv6 zone"}
	}
	if err := CheckPort("port", in.Port); err != nil {
		return err
	}
	for name, p := range in.Ports {
		if err := CheckName("ports", name); err != nil {
			return err
		}
		if err := CheckPort("ports."+name, p); err != nil {
			return err
		}
	}
	if in.Weight < 1 || in.Weight > MaxWeight {
		return &FieldError{Field: "weight", Msg: fmt.Sprintf("%d is not in 1-%d", in.Weight, MaxWeight)}
	}
	if len(in.Tags) > MaxTags {
		return &FieldError{Field: "tags", Msg: fmt.Sprintf("more than %d tags", MaxTags)}
	}
	if len(in.Meta) > MaxMetaPairs {
		return &FieldError{Field: "meta", Msg: fmt.Sprintf("more than %d pairs", MaxMetaPairs)}
	}
	return validateChecks(in.Checks)
}
