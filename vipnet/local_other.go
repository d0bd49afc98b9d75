//go:build !linux

package vipnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// MakeLocal makes every address of cidr local to this host. Only Linux
// can route a whole range to the host; elsewhere a range inside
// 127.0.0.0/8 is taken as local as it is, and any other range is an error
// that wraps errors.ErrUnsupported.
func MakeLocal(ctx context.Context, cidr netip.Prefix) (undo func() error, err error) {
	if !cidr.IsValid() {
		return nil, errors.New("vipnet: making a VIP range local: not a valid CIDR")
	}
	if alreadyLocal(cidr.Masked()) {
		return func() error { return nil }, nil
	}
	return nil, fmt.Errorf("vipnet: making %s local: only Linux can make a range outside 127.0.0.0/8 local: %w", cidr.Masked(), errors.ErrUnsupported)
}
