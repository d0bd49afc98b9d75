package catalog

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDecodeInstance(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		wantErr string
	}{
		{"minimal", `{"id":"i1","service":"web","address":"10.0.0.1","port":80}`, ""},
		{"newer field ignored", `{"id":"i1","service":"web","address":"::1","port":80,"future":{"x":1}}`, ""},
		{"bad json", `{"id":`, "decode instance"},
		{"not an object", `[1,2]`, "decode instance"},
		{"bad id", `{"id":"I 1","service":"web","address":"10.0.0.1","port":80}`, "id"},
		{"no address", `{"id":"i1","service":"web","port":80}`, "address"},
		{"bad address", `{"id":"i1","service":"web","address":"web.local","port":80}`, "decode instance"},
		{"zero port", `{"id":"i1","service":"web","address":"10.0.0.1","port":0}`, "port"},
		{"big port", `{"id":"i1","service":"web","address":"10.0.0.1","port":70000}`, "port"},
		{"bad weight", `{"id":"i1","service":"web","address":"10.0.0.1","port":80,"weight":-3}`, "weight"},
		{"bad named port", `{"id":"i1","service":"web","address":"10.0.0.1","port":80,"ports":{"http":0}}`, "ports.http"},
		{"host", `{"id":"i1","service":"web","address":"198.18.0.20","port":80,"host":"198.18.0.11"}`, ""},
		{"empty host", `{"id":"i1","service":"web","address":"10.0.0.1","port":80,"host":""}`, ""},
		{"bad host", `{"id":"i1","service":"web","address":"10.0.0.1","port":80,"host":"web.local"}`, "decode instance"},
		{"host with zone", `{"id":"i1","service":"web","address":"10.0.0.1","port":80,"host":"fe80::1%eth0"}`, "host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DecodeInstance([]byte(tt.value))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeInstance: %v", err)
				}
				if in.Weight != 1 {
					t.Errorf("weight = %d, want default 1", in.Weight)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DecodeInstance error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestInstanceHost: the host an instance registered from is kept through
// the stored form, and a record without one (from a single-host or older
// registrar) neither gains one nor is written with one.
func TestInstanceHost(t *testing.T) {
	in := &Instance{ID: "i1", Service: "web", Address: netip.MustParseAddr("198.18.0.20"), Port: 80, Weight: 1,
		Host: netip.MustParseAddr("198.18.0.11")}
	b, err := EncodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"host":"198.18.0.11"`) {
		t.Errorf("EncodeInstance = %s, want the host in it", b)
	}
	got, err := DecodeInstance(b)
	if err != nil {
		t.Fatalf("DecodeInstance(%s): %v", b, err)
	}
	if got.Host != in.Host {
		t.Errorf("host after a round trip = %v, want %v", got.Host, in.Host)
	}

	in.Host = netip.Addr{}
	if b, err = EncodeInstance(in); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"host"`) {
		t.Errorf("EncodeInstance without a host = %s, want no host field", b)
	}
	old, err := DecodeInstance([]byte(`{"id":"i1","service":"web","address":"10.0.0.1","port":80}`))
	if err != nil {
		t.Fatal(err)
	}
	if old.Host.IsValid() {
		t.Errorf("a record without host decodes with host %v, want none", old.Host)
	}
}

func TestServiceRoundTrip(t *testing.T) {
	s := &Service{
		Name:    "web",
		VIP:     netip.MustParseAddr("127.77.0.1"),
		Ports:   []Port{{Name: "http", Port: 80, Protocol: ProtocolTCP}, {Name: "dns", Port: 53, Protocol: ProtocolUDP}},
		Created: time.Unix(1700000000, 0).UTC(),
	}
	b, err := EncodeService(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeService(b)
	if err != nil {
		t.Fatalf("DecodeService(%s): %v", b, err)
	}
	if got.Name != s.Name || got.VIP != s.VIP || len(got.Ports) != 2 || !got.Created.Equal(s.Created) {
		t.Errorf("round trip = %+v, want %+v", got, s)
	}
	if p, ok := got.Port("dns"); !ok || p.Port != 53 {
		t.Errorf("Port(dns) = %+v, %v", p, ok)
	}
}

func TestDecodeServiceRejects(t *testing.T) {
	for _, v := range []string{
		``,
		`{}`,
		`{"name":"web","vip":"127.77.0.1","ports":[]}`,
		`{"name":"web","ports":[{"name":"default","port":80,"protocol":"tcp"}]}`,
		`{"name":"web","vip":"127.77.0.1","ports":[{"name":"default","port":80,"protocol":"sctp"}]}`,
		`{"name":"web","vip":"127.77.0.1","ports":[{"name":"a","port":80,"protocol":"tcp"},{"name":"a","port":81,"protocol":"tcp"}]}`,
	} {
		if s, err := DecodeService([]byte(v)); err == nil {
			t.Errorf("DecodeService(%s) = %+v, want error", v, s)
		}
	}
}

func TestPortFor(t *testing.T) {
	in := &Instance{Port: 8080, Ports: map[string]int{"http": 8080, "admin": 9090}}
	if p, ok := in.PortFor("admin"); !ok || p != 9090 {
		t.Errorf("PortFor(admin) = %d, %v", p, ok)
	}
	if _, ok := in.PortFor("grpc"); ok {
		t.Errorf("PortFor(grpc) found a port the instance does not have")
	}
	plain := &Instance{Port: 8080}
	if p, ok := plain.PortFor("anything"); !ok || p != 8080 {
		t.Errorf("PortFor on an instance without named ports = %d, %v", p, ok)
	}
}

func FuzzDecodeInstance(f *testing.F) {
	f.Add([]byte(`{"id":"i1","service":"web","address":"10.0.0.1","port":80,"ports":{"http":80},"weight":3,"tags":["a"],"meta":{"k":"v"}}`))
	f.Add([]byte(`{"id":"i1"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeInstance(b)
		if err != nil {
			return
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("decoded instance does not validate: %v", err)
		}
		out, err := EncodeInstance(in)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := DecodeInstance(out); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
	})
}

func FuzzDecodeService(f *testing.F) {
	f.Add([]byte(`{"name":"web","vip":"127.77.0.1","ports":[{"name":"default","port":80,"protocol":"tcp"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeService(b)
		if err != nil {
			return
		}
		out, err := EncodeService(s)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := DecodeService(out); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
	})
}

func TestServiceMainPort(t *testing.T) {
	def := Port{Name: DefaultPortName, Port: 80, Protocol: ProtocolTCP}
	grpc := Port{Name: "grpc", Port: 9000, Protocol: ProtocolGRPC}
	web := Port{Name: "web", Port: 8080, Protocol: ProtocolHTTP}
	tests := []struct {
		name string
		svc  *Service
		in   *Instance
		want Port
		ok   bool
	}{
		{"default wins", &Service{Ports: []Port{def, grpc}}, &Instance{Port: 9000, Ports: map[string]int{"grpc": 9000}}, def, true},
		{"the named port numbered as the main one", &Service{Ports: []Port{grpc, web}}, &Instance{Port: 7001, Ports: map[string]int{"grpc": 7000, "web": 7001}}, web, true},
		{"no named port at the main one", &Service{Ports: []Port{grpc}}, &Instance{Port: 1, Ports: map[string]int{"grpc": 2}}, Port{}, false},
		{"no service record", nil, &Instance{Port: 1}, Port{}, false},
	}
	for _, tc := range tests {
		if got, ok := tc.svc.MainPort(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
