//go:build linux

package protocol

import (
	"golang.org/x/sys/unix"
)

// spliceSupported: this platform has splice(2).
const spliceSupported = true

// newKernelPipe makes a non-blocking pipe and asks for size bytes of
// room (the kernel rounds it to pages and caps it at
// /proc/sys/fs/pipe-max-size; a refusal keeps the default 64 KiB).
func newKernelPipe(size int) (*KernelPipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	p := &KernelPipe{r: fds[0], w: fds[1]}
	if size > 0 {
		unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, size) //nolint:errcheck // a smaller pipe still works
	}
	return p, nil
}

// FillFrom moves what the socket fd has queued, up to the pipe's room,
// into the pipe without copying it to user space. It answers Continue
// when bytes came (whether more wait is unknown: unlike a short read, a
// short splice may mean the pipe ran out of slots), WouldBlock when the
// socket had nothing (call it only on an empty pipe, where EAGAIN can
// only be the socket's), Closed at EOF and Error when the socket failed.
func (p *KernelPipe) FillFrom(fd int) (int, SocketResult) {
	for {
		n, err := splice(fd, p.w, 1<<30)
		switch {
		case err == nil && n > 0:
			p.n += n
			return n, Continue
		case err == nil:
			return 0, Closed
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return 0, WouldBlock
		default:
			return 0, Error
		}
	}
}

// DrainTo moves the pipe's bytes to the socket fd, as far as its send
// buffer takes them, with Write's results.
func (p *KernelPipe) DrainTo(fd int) (int, SocketResult) {
	total := 0
	for p.n > 0 {
		n, err := splice(p.r, fd, p.n)
		if n > 0 {
			p.n -= n
			total += n
		} else if err == nil {
			return total, Error // nothing moved and nothing said why: never loop on it
		}
		if r, stop := writeResult(err); stop {
			return total, r
		}
	}
	return total, Continue
}

func (p *KernelPipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// splice moves up to n bytes from in to out, one of them the pipe. Both
// are non-blocking, so it goes through RawSyscall, as read and write do
// (rawio_linux.go), skipping the runtime's bookkeeping for calls that
// may block.
func splice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
