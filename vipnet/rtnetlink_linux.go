package vipnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// localRoute is a route of type local in the local table: every address
// of dst is delivered to this host, through interface oif.
type localRoute struct {
	dst netip.Prefix
	oif uint32
}

// family returns the address family of r's destination.
func family(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// rtmsg returns the route message header of r (struct rtmsg) followed by
// its attributes, as "ip route add local DST dev lo" sends it.
func (r localRoute) rtmsg() []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = family(r.dst)
	b[1] = uint8(r.dst.Bits())
	b[4] = unix.RT_TABLE_LOCAL
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_HOST
	b[7] = unix.RTN_LOCAL
	b = appendAttr(b, unix.RTA_DST, r.dst.Addr().AsSlice())
	b = appendAttr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, r.oif))
	return appendAttr(b, unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, unix.RT_TABLE_LOCAL))
}

// appendAttr appends a route attribute (struct rtattr and its padded data).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for ; n%unix.NLMSG_ALIGNTO != 0; n++ {
		b = append(b, 0)
	}
	return b
}

// routeRequest sends r in a message of type typ (RTM_NEWROUTE or
// RTM_DELROUTE) with flags besides NLM_F_REQUEST|NLM_F_ACK, and returns
// the kernel's answer as a unix.Errno, or nil.
func routeRequest(ctx context.Context, typ uint16, flags uint16, r localRoute) error {
	c, err := dialRoute()
	if err != nil {
		return err
	}
	defer unix.Close(c.fd)
	seq, err := c.send(typ, unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags, r.rtmsg())
	if err != nil {
		return err
	}
	return c.receive(ctx, seq, nil)
}

// coveredByLocal reports whether a local route of the local table covers
// every address of cidr.
func coveredByLocal(ctx context.Context, cidr netip.Prefix) (bool, error) {
	c, err := dialRoute()
	if err != nil {
		return false, err
	}
	defer unix.Close(c.fd)
	req := make([]byte, unix.SizeofRtMsg)
	req[0] = family(cidr)
	seq, err := c.send(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, req)
	if err != nil {
		return false, err
	}
	covered := false
	err = c.receive(ctx, seq, func(m *syscall.NetlinkMessage) {
		if dst, ok := localDst(m); ok && dst.Bits() <= cidr.Bits() && dst.Contains(cidr.Addr()) {
			covered = true
		}
	})
	return covered, err
}

// localDst returns the destination of route message m when m is a local
// route of the local table.
func localDst(m *syscall.NetlinkMessage) (netip.Prefix, bool) {
	if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
		return netip.Prefix{}, false
	}
	bits, table, typ := int(m.Data[1]), uint32(m.Data[4]), m.Data[7]
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil || typ != unix.RTN_LOCAL {
		return netip.Prefix{}, false
	}
	var dst netip.Addr
	if m.Data[0] == unix.AF_INET {
		dst = netip.IPv4Unspecified()
	} else {
		dst = netip.IPv6Unspecified()
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) == 4 {
				table = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.RTA_DST:
			if d, ok := netip.AddrFromSlice(a.Value); ok {
				dst = d
			}
		}
	}
	if table != unix.RT_TABLE_LOCAL {
		return netip.Prefix{}, false
	}
	p, err := dst.Prefix(bits)
	return p, err == nil
}

// routeConn is a NETLINK_ROUTE socket of the calling thread's network
// namespace.
type routeConn struct {
	fd  int
	seq uint32
}

func dialRoute() (*routeConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	// A short receive timeout lets receive notice a cancelled context.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting the netlink socket's timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a netlink socket: %w", err)
	}
	return &routeConn{fd: fd}, nil
}

// send sends one message and returns its sequence number.
func (c *routeConn) send(typ, flags uint16, body []byte) (uint32, error) {
	c.seq++
	b := make([]byte, 0, unix.NLMSG_HDRLEN+len(body))
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, c.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, body...)
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sending to netlink: %w", err)
	}
	return c.seq, nil
}

// receive reads the answers to message seq until the kernel's
// acknowledgement or the end of a dump, handing every other message to
// each (when not nil). It returns the kernel's error as a unix.Errno.
func (c *routeConn) receive(ctx context.Context, seq uint32, each func(*syscall.NetlinkMessage)) error {
	buf := make([]byte, 1<<16)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receiving from netlink: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parsing netlink's answer: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("short netlink error message")
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			default:
				if each != nil {
					each(m)
				}
			}
		}
	}
}
