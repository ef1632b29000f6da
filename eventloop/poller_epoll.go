//go:build linux

package eventloop

import (
	"time"

	"golang.org/x/sys/unix"
)

// Poller is an edge-triggered readiness poller: epoll on Linux.
//
// Semantics follow mio's: every registration is edge-triggered
// (EPOLLET), so an event is reported when the readiness changes, not
// while it lasts. After a readable event the owner must read until the
// socket answers EAGAIN before it can expect another readable event;
// the same holds for writes. Read-side closes are always reported
// (EPOLLRDHUP), and so is TCP urgent data (EPOLLPRI, as [Priority]);
// errors and hang-ups are reported whatever the interest. A Poller is owned by one loop: Register, Reregister and
// Deregister may be called from other goroutines by the kernel's rules,
// but sluice only calls them on the loop.
type Poller struct {
	sim  Backend // a simulation stands in for the kernel
	epfd int
}

// Events is a reusable batch of events filled by [Poller.Wait]. Allocate
// it once per loop with [NewEvents]; Wait never allocates.
type Events struct {
	sim []simEvent // filled by a Backend instead of the kernel
	raw []unix.EpollEvent
	n   int
}

// NewEvents returns a batch that holds up to capacity events per Wait.
func NewEvents(capacity int) *Events {
	if capacity <= 0 {
		capacity = 256
	}
	return &Events{raw: make([]unix.EpollEvent, capacity)}
}

// Len is the number of events the last Wait returned.
func (e *Events) Len() int { return e.n }

// Get returns the token and readiness of event i, 0 <= i < Len().
func (e *Events) get(i int) (Token, Ready) {
	ev := &e.raw[i]
	return Token(uint32(ev.Fd)), readyFromEpoll(ev.Events)
}

func readyFromEpoll(ev uint32) Ready {
	var r Ready
	if ev&unix.EPOLLIN != 0 {
		r |= Readable
	}
	if ev&unix.EPOLLPRI != 0 {
		r |= Readable | Priority
	}
	if ev&unix.EPOLLOUT != 0 {
		r |= Writable
	}
	if ev&unix.EPOLLERR != 0 {
		r |= Error
	}
	if ev&unix.EPOLLRDHUP != 0 {
		r |= ReadClosed
	}
	if ev&unix.EPOLLHUP != 0 {
		r |= HangUp
	}
	return r
}

// newKernelPoller creates an epoll instance (close-on-exec).
func newKernelPoller() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, wrapErr("epoll_create1", err)
	}
	return &Poller{epfd: fd}, nil
}

func epollFlags(i Interest) uint32 {
	f := uint32(unix.EPOLLET | unix.EPOLLRDHUP)
	if i&InterestRead != 0 {
		f |= unix.EPOLLIN | unix.EPOLLPRI
	}
	if i&InterestWrite != 0 {
		f |= unix.EPOLLOUT
	}
	return f
}

// register is Register on the kernel's poller (t is checked).
func (p *Poller) register(fd int, t Token, i Interest) error {
	return p.ctl(unix.EPOLL_CTL_ADD, "register", fd, t, i)
}

// reregister is Reregister on the kernel's poller (t is checked).
func (p *Poller) reregister(fd int, t Token, i Interest) error {
	return p.ctl(unix.EPOLL_CTL_MOD, "reregister", fd, t, i)
}

// registerReserved registers one of the loop's own descriptors.
func (p *Poller) registerReserved(fd int, t Token, i Interest) error {
	return p.ctl(unix.EPOLL_CTL_ADD, "register", fd, t, i)
}

func (p *Poller) ctl(op int, name string, fd int, t Token, i Interest) error {
	ev := unix.EpollEvent{Events: epollFlags(i), Fd: int32(uint32(t))}
	if err := unix.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return wrapErr(name, err)
	}
	return nil
}

// Deregister removes fd. Closing a descriptor also removes it, but only
// once every duplicate is closed, so sessions deregister explicitly.
func (p *Poller) deregister(fd int) error {
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return wrapErr("deregister", err)
	}
	return nil
}

// Wait blocks until at least one event is ready or timeout passes, and
// fills events. A negative timeout waits forever; timeouts are rounded up
// to whole milliseconds so a timer is never woken for early. An
// interrupted wait returns no events and no error.
func (p *Poller) wait(events *Events, timeout time.Duration) (int, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	n, err := unix.EpollWait(p.epfd, events.raw, ms)
	if err != nil {
		events.n = 0
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, wrapErr("epoll_wait", err)
	}
	events.n = n
	return n, nil
}

// Close releases the epoll descriptor.
func (p *Poller) close() error {
	if p.epfd < 0 {
		return nil
	}
	err := unix.Close(p.epfd)
	p.epfd = -1
	return err
}
