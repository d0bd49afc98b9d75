// Package testenv starts the real servers NetSel's tests talk to — embedded
// etcd, a registrar, CoreDNS, Caddy — on loopback, and stops them when the
// test ends. Tests wait on conditions with Eventually, never on fixed sleeps.
package testenv
