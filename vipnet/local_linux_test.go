package vipnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// roundTrip dials addr, which ln must accept, and checks a byte comes
// back. It must run on the namespace's thread.
func roundTrip(ln net.Listener, addr string) error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("!"))
		done <- err
	}()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "!" {
		return fmt.Errorf("read %q from %s; want %q", b, addr, "!")
	}
	return <-done
}

// plainBind reports the error of binding addr without FreeBind.
func plainBind(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
	}
	return err
}

func TestMakeLocal(t *testing.T) {
	for _, tc := range []struct {
		cidr, vip, other string
	}{
		{"198.19.0.0/16", "198.19.3.7", "198.19.3.8"},
		{"fd00:77::/64", "fd00:77::3:7", "fd00:77::3:8"},
	} {
		t.Run(tc.cidr, func(t *testing.T) {
			ns := newNetns(t)
			cidr := netip.MustParsePrefix(tc.cidr)
			v6 := cidr.Addr().Is6()
			route := "local " + tc.cidr + " dev lo"
			var undo func() error
			err := inNetns(ns, func() error {
				if err := plainBind(net.JoinHostPort(tc.other, "0")); err == nil {
					return errors.New("bound a VIP without the route: the test cannot fail")
				}
				var err error
				if undo, err = MakeLocal(context.Background(), cidr); err != nil {
					return err
				}
				// IPv6 binds only configured addresses, local route or not:
				// there FreeBind is what makes a VIP bindable.
				if err := plainBind(net.JoinHostPort(tc.other, "0")); err != nil && !v6 {
					return fmt.Errorf("after MakeLocal: %w", err)
				}
				lc := net.ListenConfig{Control: FreeBind}
				ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(tc.vip, "0"))
				if err != nil {
					return err
				}
				defer ln.Close()
				if err := roundTrip(ln, ln.Addr().String()); err != nil {
					return fmt.Errorf("after MakeLocal: %w", err)
				}
				if !hasRoute(t, ns, v6, route) {
					return fmt.Errorf("after MakeLocal, no %q in:\n%s", route, localRoutes(t, ns, v6))
				}
				if err := undo(); err != nil {
					return fmt.Errorf("undo: %w", err)
				}
				if hasRoute(t, ns, v6, route) {
					return fmt.Errorf("after undo, %q still in:\n%s", route, localRoutes(t, ns, v6))
				}
				if err := plainBind(net.JoinHostPort(tc.other, "0")); err == nil {
					return errors.New("after undo: bound a VIP without FreeBind")
				}
				if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
					c.Close()
					return errors.New("after undo: dialled the VIP listener")
				}
				return undo() // a second undo is no error
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMakeLocalLeavesOthers checks MakeLocal adds nothing, and its undo
// removes nothing, when the range is local already.
func TestMakeLocalLeavesOthers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing string // a route added first, as an administrator would
		cidr     string
	}{
		{"same route", "local 198.19.0.0/16 dev lo", "198.19.0.0/16"},
		{"wider route", "local 198.18.0.0/15 dev lo", "198.19.4.0/24"},
		{"address on lo", "", "127.77.0.0/16"},
		{"IPv6 route", "local fd00:77::/48 dev lo", "fd00:77::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t)
			cidr := netip.MustParsePrefix(tc.cidr)
			v6 := cidr.Addr().Is6()
			if tc.existing != "" {
				args := append([]string{"-n", ns}, ipFamily(v6)...)
				ip(t, append(append(args, "route", "add"), strings.Fields(tc.existing)...)...)
			}
			before := localRoutes(t, ns, v6)
			err := inNetns(ns, func() error {
				undo, err := MakeLocal(context.Background(), cidr)
				if err != nil {
					return err
				}
				if after := localRoutes(t, ns, v6); after != before {
					return fmt.Errorf("MakeLocal changed the local table from\n%s\nto\n%s", before, after)
				}
				return undo()
			})
			if err != nil {
				t.Fatal(err)
			}
			if after := localRoutes(t, ns, v6); after != before {
				t.Fatalf("undo changed the local table from\n%s\nto\n%s", before, after)
			}
		})
	}
}

func ipFamily(v6 bool) []string {
	if v6 {
		return []string{"-6"}
	}
	return nil
}

// TestMakeLocalUndoReplaced checks undo deletes only its own route: once
// an administrator has replaced it with one of theirs, undo leaves theirs.
func TestMakeLocalUndoReplaced(t *testing.T) {
	ns := newNetns(t)
	cidr := netip.MustParsePrefix("198.19.0.0/16")
	err := inNetns(ns, func() error {
		undo, err := MakeLocal(context.Background(), cidr)
		if err != nil {
			return err
		}
		ip(t, "-n", ns, "route", "del", "local", "198.19.0.0/16", "dev", "lo")
		ip(t, "-n", ns, "route", "add", "local", "198.19.0.0/16", "dev", "lo", "proto", "static")
		return undo()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !hasRoute(t, ns, false, "local 198.19.0.0/16 dev lo proto static") {
		t.Fatalf("undo removed the administrator's route:\n%s", localRoutes(t, ns, false))
	}
}

// TestMakeLocalPermission runs MakeLocal on a thread without
// CAP_NET_ADMIN: the error must say so and give the command to run.
func TestMakeLocalPermission(t *testing.T) {
	for _, tc := range []struct{ cidr, command string }{
		{"198.19.0.0/16", "ip route add local 198.19.0.0/16 dev lo"},
		{"fd00:77::/64", "ip -6 route add local fd00:77::/64 dev lo"},
	} {
		t.Run(tc.cidr, func(t *testing.T) {
			ns := newNetns(t)
			cidr := netip.MustParsePrefix(tc.cidr)
			before := localRoutes(t, ns, cidr.Addr().Is6())
			var err error
			if nserr := inNetns(ns, func() error {
				if err := dropCap(unix.CAP_NET_ADMIN); err != nil {
					return err
				}
				_, err = MakeLocal(context.Background(), cidr)
				return nil
			}); nserr != nil {
				t.Fatal(nserr)
			}
			if err == nil {
				t.Fatal("MakeLocal without CAP_NET_ADMIN succeeded")
			}
			t.Log(err)
			if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), tc.command) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
				t.Errorf("error %q: want a permission error naming CAP_NET_ADMIN and %q", err, tc.command)
			}
			if after := localRoutes(t, ns, cidr.Addr().Is6()); after != before {
				t.Errorf("the local table changed from\n%s\nto\n%s", before, after)
			}
		})
	}
}
