package caddymodule

import (
	"net/netip"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// TestUpstreamsWindow checks that a big service yields a window of its
// instances, consecutive by ID from a start that changes per request, that
// netsel_weighted over windows honours the weights of the whole service,
// and that a small service, or a window of -1, yields every instance.
func TestUpstreamsWindow(t *testing.T) {
	// Every tenth instance weighs 9: 20 of 200 take half the load.
	app := appWith(t, map[string]int{"big": 200, "small": 3}, func(i int) int {
		if i%10 == 0 {
			return 9
		}
		return 1
	})
	u := &Upstreams{app: app}
	sel := &WeightedSelection{app: app}
	host := new(reverseproxy.Host)

	const requests = 4000
	starts := map[int]bool{}
	heavy := 0
	for range requests {
		r := requestFor("big")
		ups, err := u.GetUpstreams(r)
		if err != nil || len(ups) != DefaultWindow {
			t.Fatalf("%d upstreams, %v; want a window of %d", len(ups), err, DefaultWindow)
		}
		first := instanceAt(t, ups[0].Dial)
		for k, up := range ups {
			// Consecutive instances, wrapping around after the last.
			if got, want := instanceAt(t, up.Dial), (first+k)%200; got != want {
				t.Fatalf("upstream %d of the window is instance %d, want %d", k, got, want)
			}
			up.Host = host // as Caddy's provisionUpstream does
		}
		starts[first] = true
		chosen := sel.Select(ups, r, nil)
		if chosen == nil {
			t.Fatal("nothing selected")
		}
		if instanceAt(t, chosen.Dial)%10 == 0 {
			heavy++
		}
	}
	if len(starts) < 150 {
		t.Errorf("%d requests' windows began at only %d instances", requests, len(starts))
	}
	// Expect half on the heavy instances: 2000, with a binomial sd of ~32.
	if heavy < 1800 || heavy > 2200 {
		t.Errorf("%d of %d requests reached the instances of weight 9, want about half", heavy, requests)
	}

	for _, tt := range []struct {
		name    string
		service string
		window  int
		want    int
	}{{"small service", "small", 0, 3}, {"no window", "big", -1, 200}, {"window of 5", "big", 5, 5}} {
		u := &Upstreams{app: app, Window: tt.window}
		ups, err := u.GetUpstreams(requestFor(tt.service))
		if err != nil || len(ups) != tt.want {
			t.Errorf("%s: %d upstreams, %v; want %d", tt.name, len(ups), err, tt.want)
		}
	}

	// A retry asks again: what netsel_weighted is told follows the last
	// answer, a window or not.
	r := requestFor("big")
	for _, tt := range []struct {
		window int
		want   bool
	}{{5, true}, {-1, false}, {5, true}} {
		if _, err := (&Upstreams{app: app, Window: tt.window}).GetUpstreams(r); err != nil {
			t.Fatal(err)
		}
		if windowed(r) != tt.want {
			t.Errorf("after upstreams with window %d: windowed %v, want %v", tt.window, windowed(r), tt.want)
		}
	}
}

// instanceAt returns the number of the instance appWith put at dial.
func instanceAt(t *testing.T, dial string) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(dial)
	if err != nil {
		t.Fatal(err)
	}
	a := ap.Addr().As4()
	return int(a[1])<<16 | int(a[2])<<8 | int(a[3])
}
