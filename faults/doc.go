// Package faults holds NetSel's fault-injection tests: real etcd (embedded,
// and Debian's etcd server as separate processes, alone and as a
// three-member cluster), the real registrar, CoreDNS with the netsel plugin
// and Caddy with the netsel app, all on loopback. The tests stop, pause and
// kill etcd members, cut the network to etcd, kill the registrar and
// backends, and check what NetSel promises under each fault: no instance
// lost, DNS and the proxies serving their last state, 503 with Retry-After
// from the registrar, and no half-written state in etcd. The registrar,
// DNS and the proxies run as internal/stack composes them for the runner.
//
// The package has tests only. The three-member cluster test is skipped by
// go test -short; the tests that need /usr/bin/etcd skip themselves when it
// is missing.
package faults
