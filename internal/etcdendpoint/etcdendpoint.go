// Package etcdendpoint checks etcd client URLs, with one rule for every part
// of NetSel that is given them (the CoreDNS plugin, the Caddy app).
package etcdendpoint

import (
	"fmt"
	"net/url"
	"strconv"
)

// Check reports what is wrong with ep as an etcd client URL that clientv3
// can dial: http:// or https:// with a host, a port in 1-65535 and nothing
// else, or unix:// or unixs:// with a socket path. The error does not repeat
// ep; callers name it.
func Check(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("is not a URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return fmt.Errorf("has no host")
		}
		if u.Port() == "" {
			return fmt.Errorf("needs host:port")
		}
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("port %q is not in 1-65535", u.Port())
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("must be scheme://host:port only")
		}
	case "unix", "unixs":
		if u.Host == "" && u.Path == "" {
			return fmt.Errorf("has no socket path")
		}
	default:
		return fmt.Errorf("scheme must be http, https, unix or unixs")
	}
	return nil
}
