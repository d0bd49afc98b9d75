//go:build !unix

package caddymodule

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// udpSock moves datagrams on a UDP socket. Here, unlike on unix, a reader
// holds its 64 KiB buffer while it waits, and a send waits for room.
type udpSock struct {
	c *net.UDPConn
}

// udpAddr is a destination of udpSock.sendTo.
type udpAddr = netip.AddrPort

func newUDPSock(c *net.UDPConn) (udpSock, error) { return udpSock{c}, nil }

// read waits for one datagram and calls f with it and its source.
func (s udpSock) read(f func(b []byte, from netip.AddrPort)) error {
	buf := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(buf)
	n, from, err := s.c.ReadFromUDPAddrPort(*buf)
	if err != nil {
		return err
	}
	f((*buf)[:n], from)
	return nil
}

// send sends b on the connected socket.
func (s udpSock) send(b []byte) error {
	_, err := s.c.Write(b)
	return err
}

// sendTo sends b to to.
func (s udpSock) sendTo(b []byte, to udpAddr) error {
	_, err := s.c.WriteToUDPAddrPort(b, to)
	return err
}

// toUDPAddr returns ap as a destination of sendTo.
func toUDPAddr(ap netip.AddrPort) udpAddr { return ap }

// isRefused reports whether err says the peer of a connected UDP socket
// answered ICMP port unreachable.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
