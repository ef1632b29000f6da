//go:build openbsd

package protocol

import "golang.org/x/sys/unix"

// writev writes the first non-empty buffer only: x/sys has no writev for
// these systems and OpenBSD forbids raw system calls. Writev's loop sends
// the rest, so the result is the same with more system calls.
func writev(fd int, bufs [][]byte) (int, error) {
	for _, b := range bufs {
		if len(b) > 0 {
			return unix.Write(fd, b)
		}
	}
	return 0, nil
}
