//go:build darwin || openbsd

package protocol

import (
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// These systems lack accept4 (or sluice does not rely on it there): the
// flags are set after the fact, under the fork lock like package net
// does, so an exec'd child never inherits the descriptor.

func newSocket(addr netip.AddrPort) (int, error) {
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(family(addr), unix.SOCK_STREAM, unix.IPPROTO_TCP)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, wrap("socket", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, wrap("setnonblock", err)
	}
	return fd, nil
}

func accept(lfd int) (int, unix.Sockaddr, error) {
	syscall.ForkLock.RLock()
	fd, sa, err := unix.Accept(lfd)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, sa, nil
}
