//go:build !linux

package registrar

import "net"

// hasInput reports whether bytes have arrived on c that nothing has read
// yet; where that cannot be told, it reports false.
func hasInput(net.Conn) bool { return false }
