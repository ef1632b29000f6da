//go:build darwin || freebsd || openbsd || dragonfly

package eventloop

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Waker wakes a loop blocked in [Poller.Wait] from any goroutine. On
// kqueue systems it is a non-blocking pipe. Repeated wakes before the
// loop has noticed the first are coalesced into one system call.
type Waker struct {
	sim     Backend
	r, w    int
	pending atomic.Bool
	mu      sync.Mutex // orders a write against close: a closed fd number may be reused
	closed  bool
}

func newKernelWaker(p *Poller, t Token) (*Waker, error) {
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		return nil, wrapErr("pipe", err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, wrapErr("setnonblock", err)
		}
	}
	if err := p.registerReserved(fds[0], t, InterestRead); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, err
	}
	return &Waker{r: fds[0], w: fds[1]}, nil
}

// Wake makes the loop's current or next Wait return. Safe for concurrent
// use.
func (w *Waker) wake() {
	if w.pending.Swap(true) {
		return
	}
	var one = [1]byte{1}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for {
		_, err := unix.Write(w.w, one[:])
		if err != unix.EINTR {
			return // EAGAIN: the pipe is full, the loop will wake
		}
	}
}

// reset drains the pipe, then clears the pending flag (see the eventfd
// waker for why the order matters: a write to a non-empty pipe raises
// no new edge on some systems).
func (w *Waker) resetKernel() {
	var buf [64]byte
	for {
		n, err := unix.Read(w.r, buf[:])
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
	}
	w.pending.Store(false)
}

func (w *Waker) closeKernel() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := unix.Close(w.r)
	if err2 := unix.Close(w.w); err == nil {
		err = err2
	}
	return err
}
