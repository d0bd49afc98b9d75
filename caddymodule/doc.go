// Package caddymodule holds NetSel's Caddy v2 modules.
//
//   - netsel: the app. It owns the etcd client and one catalog.Index per
//     Caddy config, shared by every module below, and optionally runs active
//     health checks and the layer-4 VIP listeners: TCP on every TCP port of
//     a service VIP, and UDP, with per-client flows closed after
//     udp_idle_timeout, on every UDP port (see vipudp.go). Its dial policy
//     keeps every module from dialling an instance at a refused address
//     (see package addrpolicy), at a VIP, or at one of NetSel's own
//     listeners.
//     With a locality (the instance zone the proxy runs in), every module
//     below uses the serving instances of that zone while there is any, and
//     the others when there is none (see locality.go).
//   - http.reverse_proxy.upstreams.netsel: a dynamic upstream source that
//     returns, from memory, the healthy instances of the service named by the
//     request (default: <service> of a Host <service>.<zone>); for a service
//     of more than window (default 32) instances, a window of them from a
//     start chosen by weight, so a request's cost does not grow with the
//     service. Options tags and tags_header (off by default) narrow them to
//     the instances carrying every tag given (see tags.go).
//   - http.reverse_proxy.selection_policies.netsel_weighted: a selection
//     policy that honours instance weights.
//   - http.handlers.netsel: answers 502 with a clear body when the request's
//     service is unknown or has no healthy instance, 404 to a Host outside
//     the zones and 508 to a request that looped back, before reverse_proxy.
//   - layer4.handlers.netsel: a caddy-l4 handler that proxies a connection to
//     the service named by a placeholder, e.g. {l4.tls.server_name}.
//
// Nothing here reads etcd except through the catalog package.
package caddymodule
