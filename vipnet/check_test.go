package vipnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	pfx := netip.MustParsePrefix
	ap := netip.MustParseAddrPort
	host := []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128"), pfx("10.1.2.3/16"), pfx("fe80::1/64"), pfx("2001:db8:1::5/64")}
	own := Addrs{
		Host:   host,
		Listen: []netip.AddrPort{ap("127.0.0.1:9000"), ap("0.0.0.0:8081"), ap("[::]:53"), ap("198.18.0.10:9000")},
		Etcd:   []netip.AddrPort{ap("[::ffff:198.20.5.5]:2379"), ap("[fd00:1::9]:2379")},
	}
	for _, tc := range []struct {
		name, cidr string
		own        Addrs
		want       string // substring of the error; empty: no error
	}{
		{"default range on a normal host", "127.77.0.0/16", own, ""},
		{"range outside 127/8", "198.19.0.0/16", own, ""},
		{"IPv6 range", "fd00:77::/64", own, ""},
		{"unmasked range is masked", "198.19.3.4/16", own, ""},
		{"smallest IPv4 range", "198.19.0.0/24", own, ""},
		{"smallest IPv6 range", "fd00:77::/120", own, ""},
		{"no addresses at all", "198.19.0.0/16", Addrs{}, ""},

		{"invalid", "", own, "not a valid CIDR"},
		{"/25", "198.19.0.0/25", own, "smaller than /24"},
		{"/121", "fd00:77::/121", own, "smaller than /120"},
		{"mapped IPv6 prefix", "::ffff:198.19.0.0/112", own, "mixes IPv4 and IPv6"},
		{"range containing the mapped block", "::/64", own, "mixes IPv4 and IPv6"},
		{"contains the loopback address", "127.0.0.0/16", own, "loopback address 127.0.0.1"},
		{"contains ::1", "::/120", own, "loopback address ::1"},
		{"contains an interface address", "10.1.0.0/24", Addrs{Host: []netip.Prefix{pfx("10.1.0.7/32")}}, "interface address 10.1.0.7/32"},
		{"inside an interface's subnet", "10.1.200.0/24", own, "interface address 10.1.2.3/16"},
		{"covers an interface's subnet", "10.0.0.0/8", own, "interface address 10.1.2.3/16"},
		{"IPv6 interface subnet", "2001:db8:1::/112", own, "interface address 2001:db8:1::5/64"},
		{"mapped interface address", "198.21.0.0/16", Addrs{Host: []netip.Prefix{pfx("::ffff:198.21.0.1/128")}}, "interface address 198.21.0.1/32"},
		{"contains a listen address", "198.18.0.0/24", own, "listen address 198.18.0.10:9000"},
		{"contains an etcd endpoint", "198.20.0.0/16", own, "etcd endpoint [::ffff:198.20.5.5]:2379"},
		{"contains an IPv6 etcd endpoint", "fd00:1::/64", own, "etcd endpoint [fd00:1::9]:2379"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cidr netip.Prefix
			if tc.cidr != "" {
				cidr = pfx(tc.cidr)
			}
			err := Check(cidr, tc.own)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check(%s) = %v; want nil", tc.cidr, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Check(%s) = nil; want an error with %q", tc.cidr, tc.want)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "-vip-cidr")):
				t.Fatalf("Check(%s) = %q; want it to name -vip-cidr and say %q", tc.cidr, err, tc.want)
			}
		})
	}
}

// TestCheckThisHost checks the default range against this host's own
// interface addresses, as the runner does at start-up.
func TestCheckThisHost(t *testing.T) {
	host, err := HostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(host) == 0 {
		t.Fatal("HostAddrs found no address")
	}
	for _, p := range host {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Errorf("HostAddrs: %s is mapped, zoned or invalid", p)
		}
	}
	if err := Check(netip.MustParsePrefix("127.77.0.0/16"), Addrs{Host: host}); err != nil {
		t.Errorf("the default range on this host: %v", err)
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct{ cidr, add, del string }{
		{"198.19.0.0/16", "ip route add local 198.19.0.0/16 dev lo", "ip route del local 198.19.0.0/16 dev lo"},
		{"198.19.3.7/16", "ip route add local 198.19.0.0/16 dev lo", "ip route del local 198.19.0.0/16 dev lo"},
		{"fd00:77::/64", "ip -6 route add local fd00:77::/64 dev lo", "ip -6 route del local fd00:77::/64 dev lo"},
	} {
		p := netip.MustParsePrefix(tc.cidr)
		if got := Command(p); got != tc.add {
			t.Errorf("Command(%s) = %q; want %q", tc.cidr, got, tc.add)
		}
		if got := UndoCommand(p); got != tc.del {
			t.Errorf("UndoCommand(%s) = %q; want %q", tc.cidr, got, tc.del)
		}
	}
}
