//go:build unix

package caddymodule

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// datagramReader reads a UDP socket with a 64 KiB buffer taken from a pool
// only once a datagram is there: a goroutine waiting on a socket, as every
// flow's does, holds no buffer, so idle flows cost a goroutine's stack and
// a descriptor rather than 64 KiB each.
type datagramReader struct {
	rc syscall.RawConn
}

func newDatagramReader(c *net.UDPConn) (datagramReader, error) {
	rc, err := c.SyscallConn()
	return datagramReader{rc}, err
}

// read waits for one datagram, as the socket's deadline allows, and calls
// f with it and its source; the buffer is f's only during the call. An
// error of the socket itself (ECONNREFUSED after an ICMP port unreachable
// on a connected socket) is returned as its errno.
func (r datagramReader) read(f func(b []byte, from netip.AddrPort)) error {
	var (
		buf  *[]byte
		n    int
		from unix.Sockaddr
		rerr error
	)
	err := r.rc.Read(func(fd uintptr) bool {
		buf = datagramBufs.Get().(*[]byte)
		n, from, rerr = unix.Recvfrom(int(fd), *buf, 0)
		if errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR) {
			datagramBufs.Put(buf)
			return false // wait until readable
		}
		return true
	})
	if err != nil {
		return err
	}
	defer datagramBufs.Put(buf)
	if rerr != nil {
		return rerr
	}
	f((*buf)[:n], sockaddrAddrPort(from))
	return nil
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// isRefused reports whether err says the peer of a connected UDP socket
// answered ICMP port unreachable.
func isRefused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }
