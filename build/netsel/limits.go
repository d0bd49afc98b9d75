package main

import (
	"flag"
	"log/slog"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/netsel/netsel/caddymodule"
	"github.com/netsel/netsel/internal/stack"
	"github.com/netsel/netsel/registrar"
)

// limitFlags are the limits of "netsel serve"; see README "Limits".
type limitFlags struct {
	maxServices, maxPerService, maxPerToken, maxData int
	registerRate                                     float64
	registerBurst                                    int
	maxBlocking, maxBlockingPerClient                int
	maxVIPListeners, maxVIPConnsPerListener          int
	maxVIPConns, maxHTTPConns                        int
	vipIdle, vipUDPIdle, vipHeaderTimeout            time.Duration
	fdReserve                                        uint64
}

func (f *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.maxServices, "max-services", registrar.DefaultMaxServices, "services the registrar creates at most (-1: no limit); more are refused 507")
	fs.IntVar(&f.maxPerService, "max-instances-per-service", registrar.DefaultMaxInstancesPerService, "instances of one service at most (-1: no limit)")
	fs.IntVar(&f.maxPerToken, "max-instances-per-token", registrar.DefaultMaxInstancesPerToken, "live instances one token registers at most, with -token-file (-1: no limit)")
	fs.IntVar(&f.maxData, "max-instance-data", registrar.DefaultMaxInstanceDataBytes, "bytes of an instance's tags and meta together at most (-1: no limit)")
	fs.Float64Var(&f.registerRate, "register-rate", registrar.DefaultRegisterRate, "registrations per second per token (or client IP) before 429 (-1: no limit)")
	fs.IntVar(&f.registerBurst, "register-burst", registrar.DefaultRegisterBurst, "burst of -register-rate")
	fs.IntVar(&f.maxBlocking, "max-blocking", registrar.DefaultMaxBlockingQueries, "blocking queries waiting at once, in all (also fitted to the descriptor reserve)")
	fs.IntVar(&f.maxBlockingPerClient, "max-blocking-per-client", registrar.DefaultMaxBlockingPerClient, "blocking queries waiting at once per token (or client IP)")
	fs.IntVar(&f.maxVIPListeners, "max-vip-listeners", caddymodule.DefaultMaxVIPListeners, "VIP:port listeners open at once (fitted to the descriptors)")
	fs.IntVar(&f.maxVIPConnsPerListener, "max-vip-conns-per-listener", caddymodule.DefaultMaxConnsPerVIP, "connections proxied at once through one VIP:port; more are reset")
	fs.IntVar(&f.maxVIPConns, "max-vip-conns", caddymodule.DefaultMaxVIPConns, "connections proxied at once through all VIPs (fitted to the descriptors); more are reset")
	fs.DurationVar(&f.vipIdle, "vip-idle-timeout", caddymodule.DefaultVIPIdleTimeout, "close a VIP connection idle both ways this long (negative: never)")
	fs.DurationVar(&f.vipUDPIdle, "vip-udp-idle-timeout", caddymodule.DefaultUDPIdleTimeout, "close a UDP flow through a VIP (one client address's datagrams to one instance) idle both ways this long (0: the default)")
	fs.DurationVar(&f.vipHeaderTimeout, "vip-header-timeout", caddymodule.DefaultVIPHeaderTimeout, "cut a client of an http, h2c or grpc VIP port that has not sent a request's headers (gRPC: the HTTP/2 handshake) within this (0: the default)")
	fs.IntVar(&f.maxHTTPConns, "max-http-conns", caddymodule.DefaultMaxHTTPProxyConns, "HTTP proxy client connections open at once (fitted to the descriptors); more are reset")
	fs.Uint64Var(&f.fdReserve, "fd-reserve", 0, "descriptors kept for etcd and the registrar, that the proxies never use (0: the larger of 25% of the open file limit and 512)")
}

// plan raises the open file limit, fits the proxies' and the registrar's
// bounds to it and logs the budget.
func (f *limitFlags) plan(logger *slog.Logger) (stack.Budget, error) {
	limit, err := stack.RaiseFDLimit(logger)
	if err != nil {
		return stack.Budget{}, err
	}
	b := stack.PlanFDs(limit, stack.FDWants{
		Reserve:      f.fdReserve,
		VIPListeners: positive(f.maxVIPListeners),
		VIPConns:     positive(f.maxVIPConns),
		HTTPConns:    positive(f.maxHTTPConns),
		Blocking:     positive(f.maxBlocking),
	})
	logger.Info("descriptor budget", "open_file_limit", b.Limit, "reserve", b.Reserve,
		"vip_listeners", b.VIPListeners, "vip_conns", b.VIPConns, "http_conns", b.HTTPConns,
		"registrar_conns", b.RegistrarConns, "blocking_queries", b.Blocking)
	return b, nil
}

// positive maps "no limit" (negative) to a number stack.PlanFDs can scale.
func positive(n int) int {
	if n < 0 {
		return 1 << 30
	}
	return n
}

// registrarLimits are the registrar's limits from the flags and budget b.
func (f *limitFlags) registrarLimits(b stack.Budget) registrar.Limits {
	return registrar.Limits{
		MaxServices:            f.maxServices,
		MaxInstancesPerService: f.maxPerService,
		MaxInstancesPerToken:   f.maxPerToken,
		MaxInstanceDataBytes:   f.maxData,
		RegisterRate:           f.registerRate,
		RegisterBurst:          f.registerBurst,
		MaxBlockingQueries:     b.Blocking,
		MaxBlockingPerClient:   f.maxBlockingPerClient,
		MaxConns:               b.RegistrarConns,
	}
}

// vipProxyLimits are the vip_proxy options of the flags and budget b.
func (f *limitFlags) vipProxyLimits(b stack.Budget) caddymodule.VIPProxyConfig {
	idle := f.vipIdle
	if idle < 0 {
		idle = -1
	}
	return caddymodule.VIPProxyConfig{
		MaxListeners:        b.VIPListeners,
		MaxConnsPerListener: f.maxVIPConnsPerListener,
		MaxConns:            b.VIPConns,
		IdleTimeout:         caddy.Duration(idle),
		UDPIdleTimeout:      caddy.Duration(f.vipUDPIdle),
		HeaderTimeout:       caddy.Duration(f.vipHeaderTimeout),
	}
}
