package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/netsel/netsel/catalog"
)

// defaultZone is the zone HTTP Hosts are routed in unless the app says
// otherwise.
const defaultZone = "netsel"

func normalZones(zones []string) []string {
	if len(zones) == 0 {
		return []string{defaultZone}
	}
	out := make([]string, len(zones))
	for i, z := range zones {
		out[i] = strings.TrimSuffix(strings.ToLower(z), ".")
	}
	return out
}

func validateZones(zones []string) error {
	for i, z := range zones {
		z = strings.TrimSuffix(z, ".")
		if z == "" {
			return fmt.Errorf("zones[%d] is empty", i)
		}
		for _, l := range strings.Split(strings.ToLower(z), ".") {
			if !catalog.ValidName(l) && !validLabel(l) {
				return fmt.Errorf("zones[%d]: %q is not a domain name", i, zones[i])
			}
		}
	}
	return nil
}

// validLabel accepts DNS labels that are not service names, such as ones
// with underscores.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 {
		return false
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// serviceFor names the service an HTTP request is for, and reports whether
// its host is in the app's zones. With a template, the service is the first
// DNS label of the template with placeholders replaced (inZone is then
// true); else it is <svc> of a Host "<svc>.<zone>", with or without a port
// or a final dot. The name is lower-cased and "" when not a valid service
// name.
func (a *App) serviceFor(r *http.Request, template string) (name string, inZone bool) {
	if template != "" {
		s := template
		if strings.IndexByte(template, '{') >= 0 {
			repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			if repl != nil {
				s = repl.ReplaceAll(template, "")
			}
		}
		return validOrEmpty(strings.ToLower(firstLabel(s))), true
	}
	return a.serviceInZone(r.Host)
}

// serviceInZone returns <svc> of host "<svc>.<zone>[.][:port]" for one of
// the app's zones, and whether host is in one of them at all.
func (a *App) serviceInZone(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, z := range a.zones {
		if svc, ok := strings.CutSuffix(host, "."+z); ok {
			return validOrEmpty(svc), true
		}
	}
	return "", false
}

func validOrEmpty(name string) string {
	if !catalog.ValidName(name) {
		return ""
	}
	return name
}

// firstLabel returns the first DNS label of host, which may carry a port.
func firstLabel(host string) string {
	if strings.HasPrefix(host, "[") { // an IPv6 literal has no labels
		return ""
	}
	if i := strings.IndexAny(host, ".:"); i >= 0 {
		return host[:i]
	}
	return host
}

func newHopID() string {
	var b [6]byte
	rand.Read(b[:])
	return "netsel-" + hex.EncodeToString(b[:])
}

// looped reports whether r has already passed through this app: its Via
// header names the app's pseudonym.
func (a *App) looped(r *http.Request) bool {
	for _, v := range r.Header.Values("Via") {
		for entry := range strings.SplitSeq(v, ",") {
			// An entry is "[protocol/]version pseudonym [comment]".
			f := strings.Fields(entry)
			if len(f) >= 2 && f[1] == a.hop {
				return true
			}
		}
	}
	return false
}

// markHop adds the app's pseudonym to r's Via header, so that r is known
// for a loop should it come back.
func (a *App) markHop(r *http.Request) {
	r.Header.Add("Via", fmt.Sprintf("%d.%d %s", r.ProtoMajor, r.ProtoMinor, a.hop))
}
