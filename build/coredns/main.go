// Command coredns is CoreDNS with the standard plugins and NetSel's netsel
// plugin, which sits right before etcd in the plugin order.
//
//	go build ./build/coredns && ./coredns -conf Corefile
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // the standard plugin set
	"github.com/coredns/coredns/coremain"

	_ "github.com/netsel/netsel/plugin" // registers "netsel"
)

func main() { coremain.Run() }
