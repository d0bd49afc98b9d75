//go:build !unix

package caddymodule

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// datagramReader reads a UDP socket with a 64 KiB buffer from a pool; here,
// unlike on unix, it is held while waiting.
type datagramReader struct {
	c *net.UDPConn
}

func newDatagramReader(c *net.UDPConn) (datagramReader, error) { return datagramReader{c}, nil }

// read waits for one datagram and calls f with it and its source.
func (r datagramReader) read(f func(b []byte, from netip.AddrPort)) error {
	buf := datagramBufs.Get().(*[]byte)
	defer datagramBufs.Put(buf)
	n, from, err := r.c.ReadFromUDPAddrPort(*buf)
	if err != nil {
		return err
	}
	f((*buf)[:n], from)
	return nil
}

// isRefused reports whether err says the peer of a connected UDP socket
// answered ICMP port unreachable.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
