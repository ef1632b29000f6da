//go:build linux

package eventloop

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Waker wakes a loop blocked in [Poller.Wait] from any goroutine. On
// Linux it is an eventfd. Repeated wakes before the loop has noticed the
// first are coalesced into one system call.
type Waker struct {
	sim     Backend
	fd      int
	pending atomic.Bool
	mu      sync.Mutex // orders a write against close: a closed fd number may be reused
	closed  bool
}

func newKernelWaker(p *Poller, t Token) (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, wrapErr("eventfd", err)
	}
	if err := p.registerReserved(fd, t, InterestRead); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &Waker{fd: fd}, nil
}

// Wake makes the loop's current or next Wait return. Safe for concurrent
// use.
func (w *Waker) wake() {
	if w.pending.Swap(true) {
		return // a wake is already on its way
	}
	var one = [8]byte{1}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return // the loop is gone; its descriptor number may belong to someone else now
	}
	for {
		_, err := unix.Write(w.fd, one[:])
		if err != unix.EINTR {
			// EAGAIN means the counter is saturated: the loop will wake.
			return
		}
	}
}

// reset is called by the loop when the waker's event arrives. It drains
// the counter first and clears the pending flag after, then the loop
// reads what was posted. The order matters: a write that lands on a
// counter that is already non-zero may raise no new edge (seen on Linux
// 6.18), so a Wake may only skip its write while a later drain and
// queue read are still sure to come.
func (w *Waker) resetKernel() {
	var buf [8]byte
	for {
		_, err := unix.Read(w.fd, buf[:])
		if err != unix.EINTR {
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
	return unix.Close(w.fd)
}
