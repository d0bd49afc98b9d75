package vipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestFreeBind binds VIPs before their range is local — plainly (which
// must fail), with FreeBind, and through Caddy's listener as the VIP proxy
// does — then makes the range local and dials them.
func TestFreeBind(t *testing.T) {
	for _, tc := range []struct{ cidr, vip, caddyVIP string }{
		{"198.19.0.0/16", "198.19.0.9", "198.19.0.10"},
		{"fd00:77::/64", "fd00:77::9", "fd00:77::10"},
	} {
		t.Run(tc.cidr, func(t *testing.T) {
			ns := newNetns(t)
			cidr := netip.MustParsePrefix(tc.cidr)
			err := inNetns(ns, func() error {
				addr := net.JoinHostPort(tc.vip, "0")
				if err := plainBind(addr); err == nil {
					return errors.New("bound a VIP without FreeBind before the route: the test cannot fail")
				}
				lc := net.ListenConfig{Control: FreeBind}
				ln, err := lc.Listen(context.Background(), "tcp", addr)
				if err != nil {
					return fmt.Errorf("FreeBind: %w", err)
				}
				defer ln.Close()

				na := caddy.NetworkAddress{Network: "tcp", Host: tc.caddyVIP}
				cln, err := na.Listen(context.Background(), 0, lc)
				if err != nil {
					return fmt.Errorf("caddy with FreeBind: %w", err)
				}
				defer cln.(net.Listener).Close()

				undo, err := MakeLocal(context.Background(), cidr)
				if err != nil {
					return err
				}
				defer undo()
				if err := roundTrip(ln, ln.Addr().String()); err != nil {
					return fmt.Errorf("listener bound before the route: %w", err)
				}
				if err := roundTrip(cln.(net.Listener), cln.(net.Listener).Addr().String()); err != nil {
					return fmt.Errorf("caddy's listener bound before the route: %w", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFreeBindOtherFamilies checks FreeBind leaves sockets that are not
// IP alone.
func TestFreeBindOtherFamilies(t *testing.T) {
	lc := net.ListenConfig{Control: FreeBind}
	ln, err := lc.Listen(context.Background(), "unix", t.TempDir()+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
