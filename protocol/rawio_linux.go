//go:build linux

package protocol

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's sockets are non-blocking, so read and write return at once:
// they go through RawSyscall, skipping the runtime's entersyscall and
// exitsyscall bookkeeping (about 5 % of a TCP proxy's CPU), which exists
// to hand the P to another thread during a call that may block.
//
// They are recvfrom, sendto and sendmsg rather than read, write and
// writev: the socket calls skip the file layer's work (position lock,
// permission and fsnotify hooks), which measured 1 to 2 % of a proxy's
// CPU per request, and MSG_NOSIGNAL turns a write to a reset connection
// into EPIPE alone, without a SIGPIPE for the process. A descriptor that
// is not a socket (ENOTSOCK) gets the plain calls.

func sysRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	if e == unix.ENOTSOCK {
		n, _, e = unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	}
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func sysWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e == unix.ENOTSOCK {
		n, _, e = unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	}
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func sysWritev(iov *unix.Iovec, n int, fd int) (int, error) {
	msg := unix.Msghdr{Iov: iov}
	msg.SetIovlen(n)
	r, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_NOSIGNAL)
	if e == unix.ENOTSOCK {
		r, _, e = unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(iov)), uintptr(n))
	}
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
