// Command caddy is Caddy v2 with the standard modules, caddy-l4 and NetSel's
// modules (the netsel app, the netsel upstream source, selection policy and
// handler, and the layer4 netsel handler).
//
//	go run ./build/caddy run --config Caddyfile
//	go run ./build/caddy list-modules | grep netsel
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	// caddy-l4: every module whose dependencies are in go.sum (not
	// l4remoteiplist, l4socks).
	_ "github.com/mholt/caddy-l4/layer4"
	_ "github.com/mholt/caddy-l4/modules/l4clock"
	_ "github.com/mholt/caddy-l4/modules/l4close"
	_ "github.com/mholt/caddy-l4/modules/l4dns"
	_ "github.com/mholt/caddy-l4/modules/l4echo"
	_ "github.com/mholt/caddy-l4/modules/l4http"
	_ "github.com/mholt/caddy-l4/modules/l4openvpn"
	_ "github.com/mholt/caddy-l4/modules/l4postgres"
	_ "github.com/mholt/caddy-l4/modules/l4proxy"
	_ "github.com/mholt/caddy-l4/modules/l4proxyprotocol"
	_ "github.com/mholt/caddy-l4/modules/l4quic"
	_ "github.com/mholt/caddy-l4/modules/l4rdp"
	_ "github.com/mholt/caddy-l4/modules/l4regexp"
	_ "github.com/mholt/caddy-l4/modules/l4ssh"
	_ "github.com/mholt/caddy-l4/modules/l4subroute"
	_ "github.com/mholt/caddy-l4/modules/l4tee"
	_ "github.com/mholt/caddy-l4/modules/l4throttle"
	_ "github.com/mholt/caddy-l4/modules/l4tls"
	_ "github.com/mholt/caddy-l4/modules/l4vars"
	_ "github.com/mholt/caddy-l4/modules/l4winbox"
	_ "github.com/mholt/caddy-l4/modules/l4wireguard"
	_ "github.com/mholt/caddy-l4/modules/l4xmpp"

	_ "github.com/netsel/netsel/caddymodule"
)

func main() {
	caddycmd.Main()
}
