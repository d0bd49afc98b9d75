package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/netsel/netsel/internal/tlsfiles"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	defaultEndpoint       = "http://127.0.0.1:2379"
	defaultEtcdDial       = 5 * time.Second
	defaultVIPDialTimeout = 2 * time.Second
	defaultBindRetry      = 5 * time.Second
	defaultCheckInterval  = 5 * time.Second
	defaultCheckTimeout   = 2 * time.Second
)

// Defaults of the VIP proxy's limits.
const (
	DefaultMaxVIPListeners   = 4096
	DefaultMaxConnsPerVIP    = 1024
	DefaultMaxVIPConns       = 16384
	DefaultVIPIdleTimeout    = 10 * time.Minute
	DefaultVIPHeaderTimeout  = 10 * time.Second
	DefaultMaxHTTPProxyConns = 8192
)

// TLSConfig is client TLS to etcd. Cert and Key go together; CA alone
// verifies the server only.
type TLSConfig struct {
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	CA   string `json:"ca,omitempty"`
}

func (t *TLSConfig) validate() error {
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("cert and key must be given together")
	}
	if t.Cert == "" && t.CA == "" {
		return errors.New("needs cert and key, or ca")
	}
	return nil
}

// VIPProxyConfig configures the layer-4 listeners on every service VIP:port.
type VIPProxyConfig struct {
	// Enabled turns the listeners on.
	Enabled bool `json:"enabled,omitempty"`
	// DialTimeout bounds each connection attempt to an instance; on failure
	// the next instance is tried. Default: 2s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Policy picks an instance: round_robin (default) or least_conn.
	Policy string `json:"policy,omitempty"`
	// Tries is how many instances to try per connection. Default: 3.
	Tries int `json:"tries,omitempty"`
	// BindRetry is how often a VIP:port that could not be bound is tried
	// again. Default: 5s.
	BindRetry caddy.Duration `json:"bind_retry,omitempty"`

	// MaxListeners bounds the VIP:port listeners open at once; the ones
	// beyond it are not opened (logged once, counted in
	// netsel_vip_listeners_skipped) until others close. Default: 4096;
	// -1: no limit.
	MaxListeners int `json:"max_listeners,omitempty"`
	// MaxConnsPerListener and MaxConns bound the connections proxied at
	// once through one VIP:port and through all of them; a connection
	// beyond either is reset at once (counted in
	// netsel_vip_overload_refused_total). Defaults: 1024 and 16384; -1: no
	// limit. A proxied connection holds six descriptors: two sockets and a
	// pipe per direction for splice(2).
	MaxConnsPerListener int `json:"max_conns_per_listener,omitempty"`
	MaxConns            int `json:"max_conns,omitempty"`
	// IdleTimeout closes a proxied connection that carried no byte either
	// way for that long. Default: 10m; -1ns (any negative): never.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// HeaderTimeout bounds the time a client of an http, h2c or grpc port
	// (proxied per request) takes to send a request's headers; a client
	// slower than that is cut. Default: 10s.
	HeaderTimeout caddy.Duration `json:"header_timeout,omitempty"`
	// UDPIdleTimeout closes a UDP flow through a VIP (a client address's
	// datagrams to one instance) that carried no datagram either way for
	// that long. Default: 30s. A flow counts as a connection towards
	// MaxConnsPerListener and MaxConns; see udpVIPs.
	UDPIdleTimeout caddy.Duration `json:"udp_idle_timeout,omitempty"`
}

// limit returns v, def when v is 0, or no limit (MaxInt) when negative.
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return math.MaxInt
	}
	return v
}

func (v *VIPProxyConfig) validate() error {
	switch v.Policy {
	case "", policyRoundRobin, policyLeastConn:
	default:
		return fmt.Errorf("policy %q is not round_robin or least_conn", v.Policy)
	}
	if v.DialTimeout < 0 || v.BindRetry < 0 || v.Tries < 0 || v.HeaderTimeout < 0 || v.UDPIdleTimeout < 0 {
		return errors.New("dial_timeout, bind_retry, tries, header_timeout and udp_idle_timeout must not be negative")
	}
	if v.MaxListeners < -1 || v.MaxConnsPerListener < -1 || v.MaxConns < -1 {
		return errors.New("max_listeners, max_conns_per_listener and max_conns must be positive, or -1 for no limit")
	}
	return nil
}

// HealthChecks are active checks of every instance, run by the app. An
// instance that fails Fails checks in a row is left out of what the modules
// serve until it passes one again. An instance can opt out of checks, or
// name its own path, with meta "netsel.health" = "none" or "/path".
type HealthChecks struct {
	// Interval between checks of an instance. Default: 5s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout of one check. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Path, when set, makes the check an HTTP GET of that path expecting a
	// 2xx or 3xx; otherwise the check is a TCP connect.
	Path string `json:"path,omitempty"`
	// Port names the instance port to check. Default: the main port.
	Port string `json:"port,omitempty"`
	// Fails is the number of failed checks in a row that marks an instance
	// unhealthy. Default: 1.
	Fails int `json:"fails,omitempty"`
}

func (h *HealthChecks) validate() error {
	if h.Interval < 0 || h.Timeout < 0 || h.Fails < 0 {
		return errors.New("interval, timeout and fails must not be negative")
	}
	if h.Path != "" && h.Path[0] != '/' {
		return fmt.Errorf("path %q must start with '/'", h.Path)
	}
	return nil
}

func (a *App) clientConfig() (clientv3.Config, error) {
	dial := time.Duration(a.DialTimeout)
	if dial <= 0 {
		dial = defaultEtcdDial
	}
	cfg := clientv3.Config{
		Endpoints:   a.Endpoints,
		DialTimeout: dial,
		Username:    a.Username,
		Password:    a.Password,
		Logger:      a.logger.Named("etcd"),
		// Notice a member that stopped answering (its host lost or cut
		// off) within seconds, and send to the others: etcd refuses
		// pings more often than every 5s.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	}
	if a.TLS != nil {
		info := transport.TLSInfo{CertFile: a.TLS.Cert, KeyFile: a.TLS.Key, TrustedCAFile: a.TLS.CA}
		tc, err := info.ClientConfig()
		if err != nil {
			return cfg, fmt.Errorf("etcd tls: %w", err)
		}
		if a.TLS.CA != "" {
			// TLSInfo takes a CA file without certificates silently.
			if tc.RootCAs, err = tlsfiles.CertPool(a.TLS.CA); err != nil {
				return cfg, fmt.Errorf("etcd tls: CA: %w", err)
			}
		}
		cfg.TLS = tc
	}
	return cfg, nil
}
