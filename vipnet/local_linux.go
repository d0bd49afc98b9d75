package vipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// MakeLocal makes every address of cidr local to this host (to the calling
// thread's network namespace), so that a listener can bind any of them and
// connections to them are delivered here. It adds the route
//
//	local CIDR dev lo table local
//
// unless the range is already local: inside 127.0.0.0/8, or covered by a
// local route in the local table (one an administrator added, or an
// address on an interface). Then it adds nothing and undo does nothing.
//
// undo deletes exactly the route MakeLocal added; it is safe to call more
// than once and from any goroutine, but on Linux it must run in the same
// network namespace as MakeLocal. A route already gone is no error.
//
// Without CAP_NET_ADMIN the error wraps the system's permission error
// (errors.Is(err, fs.ErrPermission)) and gives the Command to run instead.
func MakeLocal(ctx context.Context, cidr netip.Prefix) (undo func() error, err error) {
	noop := func() error { return nil }
	if !cidr.IsValid() {
		return nil, errors.New("vipnet: making a VIP range local: not a valid CIDR")
	}
	cidr = cidr.Masked()
	if alreadyLocal(cidr) {
		return noop, nil
	}
	lo, err := loopbackIndex()
	if err != nil {
		return nil, fmt.Errorf("vipnet: making %s local: %w", cidr, err)
	}
	r := localRoute{dst: cidr, oif: uint32(lo)}
	local, err := coveredByLocal(ctx, cidr)
	if err != nil {
		return nil, fmt.Errorf("vipnet: making %s local: reading the local routing table: %w", cidr, err)
	}
	if local {
		return noop, nil
	}
	// The kernel adds the route once the request is sent: read its answer
	// even if ctx ends meanwhile, so that a route added is always undone.
	err = routeRequest(context.WithoutCancel(ctx), unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, r)
	switch {
	case errors.Is(err, unix.EEXIST): // added since we looked: not ours
		return noop, nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return nil, fmt.Errorf("vipnet: making %s local needs CAP_NET_ADMIN; run %q as root, then start again: %w", cidr, Command(cidr), err)
	case err != nil:
		return nil, fmt.Errorf("vipnet: making %s local (%s): %w", cidr, Command(cidr), err)
	}
	return sync.OnceValue(func() error {
		err := routeRequest(context.Background(), unix.RTM_DELROUTE, 0, r)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("vipnet: removing the local route of %s (%s): %w", cidr, UndoCommand(cidr), err)
		}
		return nil
	}), nil
}

// loopbackIndex returns the index of the loopback interface.
func loopbackIndex() (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			return ifc.Index, nil
		}
	}
	return 0, errors.New("no loopback interface")
}
