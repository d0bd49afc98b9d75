package addrpolicy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	p, err := New(Config{
		VIPRanges: []netip.Prefix{netip.MustParsePrefix("127.77.0.0/16")},
		Reserved: []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:9000"),
			netip.MustParseAddrPort("[::1]:5353"),
			netip.MustParseAddrPort("0.0.0.0:8081"),
			netip.MustParseAddrPort("[::ffff:127.0.0.1]:2379"),
		},
		Deny:       []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		LocalAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ap   string
		want string // "" allowed, else a fragment of the reason
	}{
		{"127.0.0.1:8080", ""},
		{"[::1]:8080", ""},
		{"10.0.0.1:80", ""},
		{"[2001:db8::1]:443", ""},
		{"192.0.2.7:80", ""},

		{"0.0.0.0:80", "unspecified"},
		{"0.1.2.3:80", "unspecified"},
		{"[::]:80", "unspecified"},
		{"[::ffff:0.0.0.0]:80", "(IPv4-mapped as 0.0.0.0)"},
		{"255.255.255.255:80", "broadcast"},
		{"[::ffff:255.255.255.255]:80", "broadcast"},
		{"224.0.0.1:80", "multicast"},
		{"239.255.255.250:1900", "multicast"},
		{"[ff02::1]:80", "multicast"},
		{"[::ffff:224.0.0.1]:80", "multicast"},
		{"169.254.169.254:80", "link-local"},
		{"[fe80::1]:80", "link-local"},
		{"[::ffff:169.254.169.254]:80", "link-local"},

		{"127.77.0.1:80", "VIP range 127.77.0.0/16"},
		{"127.77.255.255:1", "VIP range"},
		{"[::ffff:127.77.3.4]:80", "VIP range"},
		{"10.9.1.1:80", "denied range 10.9.0.0/16"},

		{"127.0.0.1:9000", "NetSel itself listens"},
		{"[::ffff:127.0.0.1]:9000", "NetSel itself listens"},
		{"127.0.0.2:9000", ""}, // another loopback address: another socket
		{"[::1]:5353", "NetSel itself listens"},
		{"127.0.0.1:5353", ""},
		{"127.0.0.1:2379", "NetSel itself listens"}, // reserved in mapped form
		// A wildcard listen reserves its port on every local address.
		{"127.0.0.1:8081", "NetSel itself listens"},
		{"127.3.2.1:8081", "NetSel itself listens"},
		{"[::1]:8081", "NetSel itself listens"},
		{"192.0.2.7:8081", "NetSel itself listens"},
		{"192.0.2.8:8081", ""},
	} {
		ap := netip.MustParseAddrPort(tc.ap)
		err := p.Check(ap)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%s) = %v, want allowed", tc.ap, err)
		case tc.want != "" && err == nil:
			t.Errorf("Check(%s) allowed, want refused (%s)", tc.ap, tc.want)
		case tc.want != "":
			var pe *Error
			if !errors.As(err, &pe) || pe.Addr != ap.Addr() {
				t.Errorf("Check(%s) = %#v, want an *Error for the address", tc.ap, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check(%s) = %q, want it to say %q", tc.ap, err, tc.want)
			}
		}
		if p.Allowed(ap) != (tc.want == "") {
			t.Errorf("Allowed(%s) disagrees with Check", tc.ap)
		}
	}
}

func TestAllowList(t *testing.T) {
	p, err := New(Config{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::ffff:127.0.0.0/104")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.66.0.0/16")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"10.1.2.3", true},
		{"127.0.0.1", true}, // the allow entry was written IPv4-mapped
		{"::ffff:10.1.2.3", true},
		{"192.168.1.1", false},
		{"::1", false},
		{"10.66.1.1", false}, // deny wins over allow
		{"::ffff:10.66.1.1", false},
		{"224.0.0.1", false}, // built-in classes stay refused
	} {
		if err := p.CheckAddr(netip.MustParseAddr(tc.addr)); (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%s) = %v, want allowed=%v", tc.addr, err, tc.ok)
		}
	}
}

// A nil policy and a zero Config refuse the built-in classes only.
func TestZeroPolicy(t *testing.T) {
	zero, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Policy{nil, zero} {
		for _, tc := range []struct {
			ap string
			ok bool
		}{
			{"127.0.0.1:9000", true},
			{"127.77.0.1:80", true},
			{"[::ffff:0.0.0.0]:80", false},
			{"255.255.255.255:80", false},
			{"[fe80::1%eth0]:80", false},
		} {
			if err := p.Check(netip.MustParseAddrPort(tc.ap)); (err == nil) != tc.ok {
				t.Errorf("%v.Check(%s) = %v, want allowed=%v", p, tc.ap, err, tc.ok)
			}
		}
	}
	if err := (*Policy)(nil).CheckAddr(netip.Addr{}); err == nil {
		t.Error("the zero Addr was allowed")
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []Config{
		{VIPRanges: []netip.Prefix{{}}},
		{Allow: []netip.Prefix{{}}},
		{Deny: []netip.Prefix{{}}},
		{Reserved: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}},
		{Reserved: []netip.AddrPort{{}}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes(" 10.0.0.0/8, 192.168.1.7 ,,fd00::/8, 10.1.2.3/16")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParsePrefixes = %v, want %v", got, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "fe80::1%eth0", "10.0.0.1/"} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"127.0.0.1:9000", []string{"127.0.0.1:9000"}},
		{"[::1]:5353", []string{"[::1]:5353"}},
		{":8081", []string{"0.0.0.0:8081"}},
		{"http://127.0.0.1:2379", []string{"127.0.0.1:2379"}},
		{"https://[::ffff:10.0.0.1]:2379/", []string{"10.0.0.1:2379"}},
		{"http://10.0.0.1", []string{"10.0.0.1:80"}},
		{"unix:///run/etcd.sock", nil},
	} {
		got, err := ParseListen(context.Background(), nil, tc.in)
		if err != nil {
			t.Errorf("ParseListen(%q): %v", tc.in, err)
			continue
		}
		var gs []string
		for _, ap := range got {
			gs = append(gs, ap.String())
		}
		if !slices.Equal(gs, tc.want) {
			t.Errorf("ParseListen(%q) = %v, want %v", tc.in, gs, tc.want)
		}
	}
	got, err := ParseListen(context.Background(), nil, "localhost:9000")
	if err != nil || len(got) == 0 {
		t.Fatalf("ParseListen(localhost:9000) = %v, %v", got, err)
	}
	for _, ap := range got {
		if !ap.Addr().IsLoopback() || ap.Port() != 9000 {
			t.Errorf("localhost:9000 gave %s", ap)
		}
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "http://[::1"} {
		if _, err := ParseListen(context.Background(), nil, bad); err == nil {
			t.Errorf("ParseListen(%q) accepted", bad)
		}
	}
}
