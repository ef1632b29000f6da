//go:build darwin

package protocol

import "golang.org/x/sys/unix"

// writev goes through libSystem on macOS, where raw system calls are not
// supported.
func writev(fd int, bufs [][]byte) (int, error) { return unix.Writev(fd, bufs) }
