package client

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"testing"

	"github.com/netsel/netsel/internal/hostaddr"
)

// TestRouteSource: the source address of the route to a registrar on this
// host is loopback, and advertise then leaves the address to the
// registrar (sends it empty) — whatever form the registrar's URL takes.
func TestRouteSource(t *testing.T) {
	ipv6 := true
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		ipv6 = false
	} else {
		ln.Close()
	}
	for _, tc := range []struct {
		url  string
		want string // the source address; "" for any loopback one
		v6   bool
	}{
		{url: "http://127.0.0.1:9000", want: "127.0.0.1"},
		{url: "http://127.0.0.1", want: "127.0.0.1"},  // the scheme's port
		{url: "https://127.0.0.1", want: "127.0.0.1"}, // the scheme's port
		{url: "http://127.5.5.5:9000", want: ""},      // any 127/8 address
		{url: "http://localhost:9000", want: ""},      // a name
		{url: "http://[::1]:9000", want: "::1", v6: true},
		{url: "http://[::ffff:127.0.0.1]:9000", want: "127.0.0.1"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if tc.v6 && !ipv6 {
				t.Skip("no IPv6 loopback")
			}
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := hostaddr.RouteSource(context.Background(), u)
			if err != nil {
				t.Fatalf("RouteSource: %v", err)
			}
			if !got.IsLoopback() || (tc.want != "" && got.String() != tc.want) {
				t.Errorf("RouteSource = %v, want loopback %s", got, tc.want)
			}
			c, err := New(Config{URLs: []string{tc.url}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if a := c.advertise(context.Background()); a != "" {
				t.Errorf("advertise = %q, want \"\" (the registrar fills the address in)", a)
			}
		})
	}
}
