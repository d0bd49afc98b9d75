package vipnet

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// FreeBind is a net.ListenConfig.Control (and net.Dialer.Control) function
// that sets IP_FREEBIND on IPv4 sockets and IPV6_FREEBIND on IPv6 sockets,
// so that a listener can bind an address that is not (yet) local: a VIP
// listener then binds before MakeLocal, or an administrator, has made the
// range local, and start-up order does not matter. Sockets of other
// families are left alone.
func FreeBind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			serr = fmt.Errorf("reading the socket's family: %w", err)
			return
		}
		switch domain {
		case unix.AF_INET:
			if err := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1); err != nil {
				serr = fmt.Errorf("setting IP_FREEBIND: %w", err)
			}
		case unix.AF_INET6:
			err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			if errors.Is(err, unix.ENOPROTOOPT) { // before Linux 4.15
				err = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
			if err != nil {
				serr = fmt.Errorf("setting IPV6_FREEBIND: %w", err)
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("vipnet: %s %s: %w", network, address, err)
	}
	return nil
}
