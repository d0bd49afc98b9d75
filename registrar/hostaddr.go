package registrar

import (
	"net/http"
	"net/netip"
)

// remoteAddr returns the IP address req came from, unmapped and without a
// zone: the zero Addr when its RemoteAddr is not an IP address and port.
func remoteAddr(req *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// multiHost reports whether the registrar serves many hosts
// (Config.HostAddr is set).
func (r *Registrar) multiHost() bool { return r.cfg.HostAddr.IsValid() }

// hostOf returns the host a registration from the address from came from,
// as recorded in the instance: from itself, or HostAddr when from is
// loopback or unknown (the request came from this registrar's host). A
// single-host registrar records no host.
func (r *Registrar) hostOf(from netip.Addr) netip.Addr {
	switch {
	case !r.multiHost():
		return netip.Addr{}
	case from.IsValid() && !from.IsLoopback():
		return from
	}
	return r.cfg.HostAddr
}

// instanceAddr returns the address to register for the request's address
// given, made from the address from, and the host to record. An empty given
// is filled in: with the host's address on a multi-host registrar, with
// from on a single-host one. A multi-host registrar refuses a loopback
// address. Every error is a 400 naming "address"; the address policy
// applies to given and filled-in addresses alike.
func (r *Registrar) instanceAddr(given string, from netip.Addr) (addr, host netip.Addr, err error) {
	host = r.hostOf(from)
	filled := given == ""
	switch {
	case filled && r.multiHost():
		addr = host
	case filled && !from.IsValid():
		return addr, host, errBadRequest("address", "is required: the registrar cannot tell the address the request came from")
	case filled:
		addr = from
	default:
		if addr, err = netip.ParseAddr(given); err != nil {
			return addr, host, errBadRequest("address", "%q is not an IP address", truncate(given, 80))
		}
		if addr.Zone() != "" {
			return addr, host, errBadRequest("address", "%q must not carry an IPv6 zone", given)
		}
		if r.multiHost() && addr.Unmap().IsLoopback() {
			return addr, host, errBadRequest("address",
				"%s is a loopback address, reachable only on its own host: register an address other hosts reach the instance's host at (this registrar sees the request from %s), or leave address empty and the registrar fills that in",
				given, host)
		}
	}
	if err := r.policy.Load().CheckAddr(addr); err != nil {
		if filled {
			return addr, host, errBadRequest("address", "%v (filled in from the request, which gave none)", err)
		}
		return addr, host, errBadRequest("address", "%v", err)
	}
	return addr.Unmap(), host, nil
}
