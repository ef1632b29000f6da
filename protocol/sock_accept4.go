//go:build linux || freebsd || dragonfly

package protocol

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// These systems create and accept sockets non-blocking and close-on-exec
// in one system call, so a concurrent fork never inherits a descriptor.

func newSocket(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(family(addr), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, wrap("socket", err)
	}
	return fd, nil
}

func accept(lfd int) (int, unix.Sockaddr, error) {
	return unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
}
