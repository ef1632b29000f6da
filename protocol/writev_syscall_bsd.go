//go:build freebsd || dragonfly

package protocol

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func sysWritev(iov *unix.Iovec, n int, fd int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(iov)), uintptr(n))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
