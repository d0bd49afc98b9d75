package vipnet

import (
	"fmt"
	"net/netip"
)

// loopback4 is the IPv4 range every Linux host treats as local.
var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// alreadyLocal reports whether every address of cidr is local without a
// route of ours: IPv4 ranges inside 127.0.0.0/8.
func alreadyLocal(cidr netip.Prefix) bool {
	return cidr.Addr().Is4() && cidr.Bits() >= loopback4.Bits() && loopback4.Contains(cidr.Addr())
}

// Command returns the command an administrator runs to make cidr local
// by hand, as MakeLocal would: "ip route add local 198.19.0.0/16 dev lo",
// or "ip -6 route add local fd00:77::/64 dev lo" for IPv6.
func Command(cidr netip.Prefix) string {
	return ipRoute("add", cidr)
}

// UndoCommand returns the command that removes the route Command adds.
func UndoCommand(cidr netip.Prefix) string {
	return ipRoute("del", cidr)
}

func ipRoute(verb string, cidr netip.Prefix) string {
	ip := "ip"
	if cidr.Addr().Is6() {
		ip = "ip -6"
	}
	return fmt.Sprintf("%s route %s local %s dev lo", ip, verb, cidr.Masked())
}
