package netsel

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netsel/netsel/internal/testenv"
)

// TestThroughRegistrar registers through the real registrar's REST API and
// checks the DNS answers within a second, then deregisters.
func TestThroughRegistrar(t *testing.T) {
	e := startEnv(t, defaultBlock, "")
	reg := testenv.StartRegistrar(t, e.etcd.URL)
	e.waitReady(t)

	body := `{"id":"r1","address":"127.0.0.42","port":8042,"weight":5}`
	resp, err := http.Post(reg.URL+"/v1/services/shop/instances", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID  string `json:"id"`
		VIP string `json:"vip"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode/100 != 2 || out.VIP == "" {
		t.Fatalf("register: status %d, %+v, %v", resp.StatusCode, out, err)
	}
	registered := time.Now()

	e.waitFor(t, time.Second, "shop.netsel.", dns.TypeA, func(m *dns.Msg) bool {
		return len(m.Answer) == 1 && m.Answer[0].(*dns.A).A.String() == out.VIP
	}, "VIP "+out.VIP+" not served")
	e.waitFor(t, time.Second, "shop.netsel.", dns.TypeSRV, func(m *dns.Msg) bool {
		if len(m.Answer) != 1 {
			return false
		}
		srv := m.Answer[0].(*dns.SRV)
		return srv.Weight == 5 && srv.Port == 8042 && srv.Target == "r1.shop.netsel."
	}, "SRV not served")
	t.Logf("registration visible in DNS after %v", time.Since(registered))

	req, _ := http.NewRequest(http.MethodDelete, reg.URL+"/v1/services/shop/instances/r1", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("deregister: status %d", resp.StatusCode)
	}
	e.waitFor(t, time.Second, "r1.shop.netsel.", dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError }, "deregistered instance still served")
}
