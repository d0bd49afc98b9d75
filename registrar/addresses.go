package registrar

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/netsel/netsel/addrpolicy"
)

// reserve adds the TCP address a the registrar serves on to the address
// policy's reserved address:ports, so no instance can point a proxy at it.
func (r *Registrar) reserve(a net.Addr) error {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return nil
	}
	ap := ta.AddrPort()
	r.policyMu.Lock()
	defer r.policyMu.Unlock()
	if slices.Contains(r.cfg.AddrPolicy.Reserved, ap) {
		return nil
	}
	cfg := r.cfg.AddrPolicy
	cfg.Reserved = append(slices.Clip(cfg.Reserved), ap)
	p, err := addrpolicy.New(cfg)
	if err != nil {
		return fmt.Errorf("address policy with listener %s: %w", ap, err)
	}
	r.cfg.AddrPolicy = cfg
	r.policy.Store(p)
	return nil
}

// checkAddress refuses, with a 400 naming "address", an instance address
// that no proxy may dial at its main port or at any of its named ports.
func (r *Registrar) checkAddress(addr netip.Addr, port int, ports map[string]int) error {
	p := r.policy.Load()
	if err := p.Check(netip.AddrPortFrom(addr, uint16(port))); err != nil {
		return errBadRequest("address", "%v (the main port)", err)
	}
	names := make([]string, 0, len(ports))
	for name := range ports {
		names = append(names, name)
	}
	sort.Strings(names) // the same registration is refused with the same message
	for _, name := range names {
		if err := p.Check(netip.AddrPortFrom(addr, uint16(ports[name]))); err != nil {
			return errBadRequest("address", "%v (ports.%s)", err, name)
		}
	}
	return nil
}
