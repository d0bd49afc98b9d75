// Package multihost tests NetSel across hosts: network namespaces on a
// bridge (internal/testenv's host bed), a three-member etcd cluster with a
// member on each host, "netsel agent" on every host, the example service on
// two hosts and the example client on a third; then a host is lost, cut off
// and healed. It is the README's "Many hosts" set-up, run on one machine.
//
// The tests need CAP_NET_ADMIN (CI runs as root) and Debian's etcd-server;
// they skip, saying why, without them.
package multihost
