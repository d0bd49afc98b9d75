package registrar

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// hasInput reports whether bytes have arrived on c that nothing has read
// yet (its socket's receive queue is not empty).
func hasInput(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if err := raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return false
	}
	return n > 0
}
