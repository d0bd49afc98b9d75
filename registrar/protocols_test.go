package registrar_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar/api"
)

// TestProtocols: the first registration of a service sets what each port
// carries; later ones may restate it or leave it out, and one that names
// another protocol gets a 409 naming the port and writes nothing. A UDP and
// a TCP port may share a number.
func TestProtocols(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL)
	register(t, reg.URL, "rpc", mustReq(`{"id":"a","address":"127.0.0.1","port":9000,
		"ports":{"grpc":9000,"web":8080,"dns":53,"dnstcp":53},
		"protocols":{"grpc":"grpc","web":"h2c","dns":"udp"}}`))
	var view api.ServiceView
	do(t, "GET", reg.URL+"/v1/services/rpc", nil).decode(t, &view)
	want := []api.Port{
		{Name: "dns", Port: 53, Protocol: "udp"},
		{Name: "dnstcp", Port: 53, Protocol: "tcp"},
		{Name: "grpc", Port: 9000, Protocol: "grpc"},
		{Name: "web", Port: 8080, Protocol: "h2c"},
	}
	if !slices.Equal(view.Ports, want) {
		t.Fatalf("ports %+v, want %+v", view.Ports, want)
	}
	// Restated or left out: fine.
	register(t, reg.URL, "rpc", mustReq(`{"id":"b","address":"127.0.0.1","port":9001,
		"ports":{"grpc":9001,"web":8081,"dns":54,"dnstcp":54},"protocols":{"grpc":"grpc"}}`))
	register(t, reg.URL, "rpc", mustReq(`{"id":"c","address":"127.0.0.1","port":9002,
		"ports":{"grpc":9002,"web":8082,"dns":55,"dnstcp":55}}`))

	before := keys(t, etcd.Client)
	nLeases := len(leases(t, etcd.Client))
	r := do(t, "POST", reg.URL+"/v1/services/rpc/instances", `{"id":"d","address":"127.0.0.1","port":9003,
		"ports":{"grpc":9003,"web":8083,"dns":56,"dnstcp":56},"protocols":{"web":"http"}}`)
	if r.status != http.StatusConflict || r.apiError(t).Field != "protocols.web" {
		t.Errorf("another protocol: %d %s, want 409 field protocols.web", r.status, r.body)
	}
	if after := keys(t, etcd.Client); !slices.Equal(before, after) {
		t.Errorf("the conflicting registration changed keys: %v -> %v", before, after)
	}
	if n := len(leases(t, etcd.Client)); n != nLeases {
		t.Errorf("the conflicting registration left leases: %d -> %d", nLeases, n)
	}

	// A service with no named ports: "default" names its port.
	register(t, reg.URL, "echo", mustReq(`{"id":"a","address":"127.0.0.1","port":7000,"protocols":{"default":"udp"}}`))
	do(t, "GET", reg.URL+"/v1/services/echo", nil).decode(t, &view)
	if want := []api.Port{{Name: "default", Port: 7000, Protocol: "udp"}}; !slices.Equal(view.Ports, want) {
		t.Errorf("echo ports %+v, want %+v", view.Ports, want)
	}
}
