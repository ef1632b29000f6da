//go:build linux || freebsd || dragonfly

package protocol

import "golang.org/x/sys/unix"

// maxIovecs bounds one writev call; the rest goes in the next round. It
// keeps the iovec array on the stack (x/sys's Writev allocates it).
const maxIovecs = 16

// writev writes up to maxIovecs non-empty buffers in one system call
// without allocating.
func writev(fd int, bufs [][]byte) (int, error) {
	var iov [maxIovecs]unix.Iovec
	n, one := 0, []byte(nil)
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if n == maxIovecs {
			break
		}
		one = b
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
	}
	switch n {
	case 0:
		return 0, nil
	case 1:
		// One buffer: the plain write is the cheaper call, with no
		// message header or iovec array for the kernel to copy in.
		return sysWrite(fd, one)
	}
	return sysWritev(&iov[0], n, fd)
}
