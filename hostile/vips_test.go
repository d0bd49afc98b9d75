package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/netsel/netsel/registrar/client"
)

// TestVIPRangeExhausted fills a /24, the smallest range the runner takes:
// 254 services get VIPs (never the network or broadcast address), the
// 255th is a 507 that says retrying will not help, and the Go client gives
// up at once instead of retrying.
func TestVIPRangeExhausted(t *testing.T) {
	r := startRunner(t, withVIPCIDR(fmt.Sprintf("127.%d.0.0/24", 200+time.Now().Nanosecond()%50)),
		withFlags("-register-rate", "-1"))
	net, bcast := r.vipCIDR.Addr(), r.vipCIDR.Addr()
	for range 255 {
		bcast = bcast.Next()
	}
	// The canary holds one VIP already.
	for i := range 253 {
		status, body := r.register(fmt.Sprintf("svc-%d", i), map[string]any{"address": "127.0.0.1", "port": 9})
		if status != http.StatusOK {
			t.Fatalf("service %d of 254: %d %s", i+2, status, body)
		}
	}
	status, body := r.register("svc-full", map[string]any{"address": "127.0.0.1", "port": 9})
	if status != http.StatusInsufficientStorage {
		t.Fatalf("255th service in a /24: %d %s, want 507", status, body)
	}
	c, err := client.New(client.Config{URLs: []string{r.registrarURL()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = c.Keepalive(ctx, client.Registration{Service: "svc-full", Address: "127.0.0.1", Port: 9}, client.KeepaliveOptions{})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage {
		t.Errorf("Keepalive on a full range: %v, want the 507", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Keepalive took %v to give up on a full range", d)
	}
	_, list := r.get("/v1/services")
	for _, a := range []string{net.String(), bcast.String()} {
		if containsQuoted(list, a) {
			t.Errorf("VIP %s (network or broadcast) handed out: %s", a, list)
		}
	}
	r.requireServing(t)
}

func containsQuoted(b []byte, s string) bool {
	return bytes.Contains(b, []byte(`"`+s+`"`))
}
