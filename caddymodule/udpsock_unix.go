//go:build unix

package caddymodule

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// udpSock moves datagrams on a UDP socket without waiting where waiting
// would cost: it reads into a 64 KiB buffer taken from a pool only once a
// datagram is there, so a goroutine waiting on a socket, as every flow's
// does, holds no buffer (an idle flow costs a goroutine's stack and a
// descriptor rather than 64 KiB); and it sends at once or not at all, so a
// full send buffer towards one instance or client drops that datagram
// instead of holding up everyone else's.
type udpSock struct {
	rc syscall.RawConn
}

// udpAddr is a destination of udpSock.sendTo.
type udpAddr = unix.Sockaddr

func newUDPSock(c *net.UDPConn) (udpSock, error) {
	rc, err := c.SyscallConn()
	return udpSock{rc}, err
}

// read waits for one datagram, as the socket's deadline allows, and calls
// f with it and its source; the buffer is f's only during the call. An
// error of the socket itself (ECONNREFUSED after an ICMP port unreachable
// on a connected socket) is returned as its errno.
func (s udpSock) read(f func(b []byte, from netip.AddrPort)) error {
	var (
		buf  *[]byte
		n    int
		from unix.Sockaddr
		rerr error
	)
	err := s.rc.Read(func(fd uintptr) bool {
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

// send sends b on the connected socket, or fails with EAGAIN when its send
// buffer is full.
func (s udpSock) send(b []byte) error {
	var werr error
	err := s.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return !errors.Is(werr, unix.EINTR)
	})
	if err != nil {
		return err
	}
	return werr
}

// sendTo sends b to to, or fails with EAGAIN when the send buffer is full.
func (s udpSock) sendTo(b []byte, to udpAddr) error {
	var werr error
	err := s.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendto(int(fd), b, 0, to)
		return !errors.Is(werr, unix.EINTR)
	})
	if err != nil {
		return err
	}
	return werr
}

// toUDPAddr returns ap as a destination of sendTo.
func toUDPAddr(ap netip.AddrPort) udpAddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
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
