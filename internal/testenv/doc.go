// Package testenv starts the real servers NetSel's tests talk to — embedded
// etcd, a registrar, CoreDNS, Caddy — on loopback, and stops them when the
// test ends. Tests wait on conditions with Eventually, never on fixed sleeps.
//
// StartHosts builds a bed of hosts, network namespaces on a private bridge
// at 198.18.0.0/24, for tests of several hosts; StartEtcdOnHosts runs an
// etcd cluster with a member on each.
package testenv
