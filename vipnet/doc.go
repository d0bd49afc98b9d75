// Package vipnet makes a range of virtual IPs (VIPs) usable on a host.
//
// NetSel gives every service a VIP from one range (the -vip-cidr flag) and
// listens on every VIP:port. For that the host must treat every address of
// the range as its own. Inside 127.0.0.0/8 Linux already does. Any other
// range is made local the way AnyIP works: one route of type local in the
// local routing table,
//
//	ip route add local 198.19.0.0/16 dev lo
//	ip -6 route add local fd00:77::/64 dev lo
//
// makes the kernel deliver every address of the range to this host without
// an address per VIP. MakeLocal adds that route through rtnetlink when no
// local route covers the range yet, and its undo removes only a route it
// added ("ip route del local 198.19.0.0/16 dev lo"). Adding it needs
// CAP_NET_ADMIN; without it MakeLocal's error gives the command to run as
// root instead (Command), so the caller can refuse to start.
//
// FreeBind, a net.ListenConfig.Control function, sets IP_FREEBIND
// (IPV6_FREEBIND for IPv6) so a listener can bind a VIP before the route
// exists: the listeners and the route may come up in any order. For IPv6
// it is needed even after: Linux binds IPv6 sockets to configured
// addresses only, though the local route delivers the whole range.
//
// Check refuses a range that would capture addresses the host or the
// process needs: the host's interface addresses and subnets, its listen
// addresses and etcd endpoints, a range that mixes IPv4 and IPv6, and one
// smaller than /24 (IPv4) or /120 (IPv6). HostAddrs lists the host's
// interface addresses for it.
//
// On Linux, MakeLocal and HostAddrs act on the network namespace of the
// calling thread. Elsewhere FreeBind does nothing and MakeLocal accepts
// ranges inside 127.0.0.0/8 only.
package vipnet
