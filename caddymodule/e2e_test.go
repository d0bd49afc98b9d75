package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netsel/netsel/internal/testenv"
	"github.com/netsel/netsel/registrar"
	"github.com/netsel/netsel/registrar/api"
)

// TestEndToEndWithRegistrar registers instances through the real registrar
// and reaches them through both Caddy proxies.
func TestEndToEndWithRegistrar(t *testing.T) {
	e := newEnv(t)
	cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 77, byte(1 + rand.IntN(254)), 0}), 24)
	reg := testenv.StartRegistrar(t, e.etcd.URL, func(c *registrar.Config) { c.VIPCIDR = cidr })
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	startCaddy(t, config{etcdURL: e.etcd.URL, httpAddr: addr, guard: true, vip: true})

	var vip netip.AddrPort
	var ids []string
	for i := range 2 {
		b := startBackend(t, fmt.Sprintf("shop-%d", i))
		ap := netip.MustParseAddrPort(b.addr)
		body, _ := json.Marshal(api.RegisterRequest{Address: ap.Addr().String(), Port: int(ap.Port())})
		resp, err := http.Post(reg.URL+"/v1/services/shop/instances", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var rr api.RegisterResponse
		err = json.NewDecoder(resp.Body).Decode(&rr)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
			t.Fatalf("register: %s, %v", resp.Status, err)
		}
		vip = netip.AddrPortFrom(rr.VIP, uint16(rr.Port))
		ids = append(ids, rr.ID)
	}

	client := newClient()
	testenv.Eventually(t, 5*time.Second, func() bool {
		return len(counts(t, client, addr, "shop.netsel", 20)) == 2
	}, "HTTP proxy never served both instances")

	viaVIP := func() string {
		c, err := net.DialTimeout("tcp", vip.String(), time.Second)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		_, body, _ := strings.Cut(string(b), "\r\n\r\n")
		return body
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		seen := map[string]bool{}
		for range 4 {
			seen[viaVIP()] = true
		}
		return seen["shop-0"] && seen["shop-1"]
	}, "VIP %s never reached both instances", vip)

	req, _ := http.NewRequest(http.MethodDelete, reg.URL+"/v1/services/shop/instances/"+ids[0], nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testenv.Eventually(t, time.Second, func() bool {
		return counts(t, client, addr, "shop.netsel", 10)["shop-0"] == 0 && viaVIP() == "shop-1" && viaVIP() == "shop-1"
	}, "deregistered instance still served")
}
