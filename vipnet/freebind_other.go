//go:build !linux

package vipnet

import "syscall"

// FreeBind is a net.ListenConfig.Control function that, on Linux, lets a
// listener bind an address that is not local yet. Elsewhere it does
// nothing.
func FreeBind(network, address string, c syscall.RawConn) error {
	return nil
}
