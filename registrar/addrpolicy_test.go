package registrar_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/netsel/netsel/addrpolicy"
	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
)

// TestRefusedAddresses registers instances at every address no proxy may
// dial — as a hostile client aiming a proxy at NetSel itself would — and
// checks each is a 400 naming "address" that writes nothing, while a plain
// loopback instance still registers.
func TestRefusedAddresses(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	etcdAP := netip.MustParseAddrPort(strings.TrimPrefix(etcd.URL, "http://"))
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.AddrPolicy = addrpolicy.Config{
			Reserved: []netip.AddrPort{etcdAP, netip.MustParseAddrPort("0.0.0.0:5399")},
			Deny:     []netip.Prefix{netip.MustParsePrefix("10.66.0.0/16")},
		}
	})
	regAP := netip.MustParseAddrPort(reg.Addr)
	url := reg.URL + "/v1/services/web/instances"
	body := func(addr string, port uint16, extra string) string {
		return fmt.Sprintf(`{"address":%q,"port":%d%s}`, addr, port, extra)
	}
	for _, tc := range []struct{ name, body, says string }{
		{"unspecified", body("0.0.0.0", 80, ""), "unspecified"},
		{"unspecified this-network", body("0.1.2.3", 80, ""), "unspecified"},
		{"unspecified IPv6", body("::", 80, ""), "unspecified"},
		{"unspecified IPv4-mapped", body("::ffff:0.0.0.0", 80, ""), "unspecified"},
		{"broadcast", body("255.255.255.255", 80, ""), "broadcast"},
		{"broadcast IPv4-mapped", body("::ffff:255.255.255.255", 80, ""), "broadcast"},
		{"multicast", body("224.0.0.251", 5353, ""), "multicast"},
		{"multicast IPv6", body("ff02::fb", 5353, ""), "multicast"},
		{"multicast IPv4-mapped", body("::ffff:239.1.1.1", 80, ""), "multicast"},
		{"link-local", body("169.254.169.254", 80, ""), "link-local"},
		{"link-local IPv6", body("fe80::1", 80, ""), "link-local"},
		{"link-local IPv4-mapped", body("::ffff:169.254.169.254", 80, ""), "link-local"},
		{"VIP range", body("127.77.1.2", 80, ""), "VIP range"},
		{"VIP range IPv4-mapped", body("::ffff:127.77.1.2", 80, ""), "VIP range"},
		{"the registrar itself", body(regAP.Addr().String(), regAP.Port(), ""), "NetSel itself listens"},
		{"the registrar IPv4-mapped", body("::ffff:"+regAP.Addr().String(), regAP.Port(), ""), "NetSel itself listens"},
		{"the registrar as a named port", body("127.0.0.1", 8080, fmt.Sprintf(`,"ports":{"default":8080,"admin":%d}`, regAP.Port())), "ports.admin"},
		{"etcd's client port", body(etcdAP.Addr().String(), etcdAP.Port(), ""), "NetSel itself listens"},
		{"a wildcard listener via loopback", body("127.0.0.9", 5399, ""), "NetSel itself listens"},
		{"denied range", body("10.66.0.1", 80, ""), "denied range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", url, tc.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s: status %d %s, want 400", tc.body, r.status, r.body)
			}
			if e := r.apiError(t); e.Field != "address" || !strings.Contains(e.Error, tc.says) {
				t.Errorf("%s: error %+v, want field address saying %q", tc.body, e, tc.says)
			}
		})
	}
	if k := keys(t, etcd.Client); len(k) != 0 {
		t.Errorf("refused registrations wrote keys: %v", k)
	}
	if l := leases(t, etcd.Client); len(l) != 0 {
		t.Errorf("refused registrations left %d leases", len(l))
	}
	// Loopback instances away from NetSel's own ports stay allowed.
	for _, b := range []string{body("127.0.0.1", 8080, ""), body("::1", regAP.Port()+1, ""), body("127.0.0.2", regAP.Port(), "")} {
		if r := do(t, "POST", url, b); r.status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", b, r.status, r.body)
		}
	}
}

// TestAllowCIDR: with an allow list, only addresses in it register.
func TestAllowCIDR(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	reg := testenv.StartRegistrar(t, etcd.URL, func(c *registrar.Config) {
		c.AddrPolicy.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/24")}
	})
	url := reg.URL + "/v1/services/web/instances"
	if r := do(t, "POST", url, `{"address":"127.0.0.5","port":8080}`); r.status != http.StatusOK {
		t.Errorf("allowed address: %d %s", r.status, r.body)
	}
	r := do(t, "POST", url, `{"address":"127.0.1.5","port":8080}`)
	if e := r.apiError(t); r.status != http.StatusBadRequest || e.Field != "address" || !strings.Contains(e.Error, "outside the allowed ranges") {
		t.Errorf("address outside the allow list: %d %s, want 400 naming address", r.status, r.body)
	}
}
