package eventloop

import (
	"errors"
	"os"
)

var (
	// ErrReservedToken is returned when a caller registers a token above
	// [MaxToken]; those values belong to the loop.
	ErrReservedToken = errors.New("eventloop: token is reserved for the loop")
	// ErrClosed is returned by [Loop.Post] and [Loop.Run] once the loop
	// has stopped.
	ErrClosed = errors.New("eventloop: loop closed")
	// ErrRunning is returned by [Loop.Run] when the loop already runs.
	ErrRunning = errors.New("eventloop: loop already running")
)

// wrapErr names the system call that failed, keeping the errno
// reachable through errors.Is.
func wrapErr(call string, err error) error {
	return os.NewSyscallError(call, err)
}
