//go:build darwin || freebsd || openbsd || dragonfly

package eventloop

import (
	"time"

	"golang.org/x/sys/unix"
)

// Poller is an edge-triggered readiness poller: kqueue on macOS and the
// BSDs.
//
// Semantics follow mio's: both filters are added with EV_CLEAR, so an
// event is reported when readiness changes, not while it lasts. After a
// readable event the owner must read until EAGAIN before it can expect
// another; the same holds for writes. EV_EOF on the read filter is
// reported as [ReadClosed], on the write filter as [WriteClosed]. Unlike
// epoll, kqueue may report one descriptor's read and write readiness as
// two events in the same batch, each with the same token.
//
// Kevent's user data is a pointer on these systems, so the token is kept
// in a table indexed by descriptor instead of being smuggled through it.
type Poller struct {
	sim    Backend // a simulation stands in for the kernel
	kq     int
	tokens []Token
	change [2]unix.Kevent_t
	result [2]unix.Kevent_t
}

// Events is a reusable batch of events filled by [Poller.Wait]. Allocate
// it once per loop with [NewEvents]; Wait never allocates.
type Events struct {
	sim    []simEvent // filled by a Backend instead of the kernel
	raw    []unix.Kevent_t
	n      int
	tokens []Token
}

// NewEvents returns a batch that holds up to capacity events per Wait.
func NewEvents(capacity int) *Events {
	if capacity <= 0 {
		capacity = 256
	}
	return &Events{raw: make([]unix.Kevent_t, capacity)}
}

// Len is the number of events the last Wait returned.
func (e *Events) Len() int { return e.n }

// Get returns the token and readiness of event i, 0 <= i < Len().
func (e *Events) get(i int) (Token, Ready) {
	ev := &e.raw[i]
	fd := int(ev.Ident)
	t := NoToken
	if fd < len(e.tokens) {
		t = e.tokens[fd]
	}
	var r Ready
	switch ev.Filter {
	case unix.EVFILT_READ:
		r = Readable
		if ev.Flags&unix.EV_EOF != 0 {
			r |= ReadClosed
			if ev.Fflags != 0 {
				r |= Error
			}
		}
	case unix.EVFILT_WRITE:
		r = Writable
		if ev.Flags&unix.EV_EOF != 0 {
			r |= WriteClosed
			if ev.Fflags != 0 {
				r |= Error
			}
		}
	}
	if ev.Flags&unix.EV_ERROR != 0 {
		r |= Error
	}
	return t, r
}

// newKernelPoller creates a kqueue (close-on-exec).
func newKernelPoller() (*Poller, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, wrapErr("kqueue", err)
	}
	unix.CloseOnExec(kq)
	return &Poller{kq: kq}, nil
}

// register is Register on the kernel's poller (t is checked).
func (p *Poller) register(fd int, t Token, i Interest) error {
	return p.apply(fd, t, i, "register")
}

// registerReserved registers one of the loop's own descriptors.
func (p *Poller) registerReserved(fd int, t Token, i Interest) error {
	return p.apply(fd, t, i, "register")
}

// reregister is Reregister on the kernel's poller (t is checked).
func (p *Poller) reregister(fd int, t Token, i Interest) error {
	return p.apply(fd, t, i, "reregister")
}

func (p *Poller) apply(fd int, t Token, i Interest, name string) error {
	for fd >= len(p.tokens) {
		p.tokens = append(p.tokens, NoToken)
	}
	p.tokens[fd] = t
	// Both filters stay added with EV_CLEAR; interest only enables or
	// disables them, so a change never fails with ENOENT.
	rf := unix.EV_ADD | unix.EV_CLEAR | unix.EV_RECEIPT | unix.EV_DISABLE
	if i&InterestRead != 0 {
		rf = unix.EV_ADD | unix.EV_CLEAR | unix.EV_RECEIPT | unix.EV_ENABLE
	}
	wf := unix.EV_ADD | unix.EV_CLEAR | unix.EV_RECEIPT | unix.EV_DISABLE
	if i&InterestWrite != 0 {
		wf = unix.EV_ADD | unix.EV_CLEAR | unix.EV_RECEIPT | unix.EV_ENABLE
	}
	unix.SetKevent(&p.change[0], fd, unix.EVFILT_READ, rf)
	unix.SetKevent(&p.change[1], fd, unix.EVFILT_WRITE, wf)
	return p.submit(name, true)
}

// submit applies p.change and reports the first per-change error. With
// EV_RECEIPT every change comes back as an EV_ERROR event whose data is
// the errno (0 on success).
func (p *Poller) submit(name string, strict bool) error {
	n, err := unix.Kevent(p.kq, p.change[:], p.result[:], nil)
	if err != nil {
		return wrapErr(name, err)
	}
	for k := 0; k < n; k++ {
		ev := &p.result[k]
		if ev.Flags&unix.EV_ERROR != 0 && ev.Data != 0 {
			errno := unix.Errno(ev.Data)
			if !strict && errno == unix.ENOENT {
				continue
			}
			return wrapErr(name, errno)
		}
	}
	return nil
}

// Deregister removes fd. Closing a descriptor also removes its filters,
// but sessions deregister explicitly so that the token table stays right.
func (p *Poller) deregister(fd int) error {
	if fd < len(p.tokens) {
		p.tokens[fd] = NoToken
	}
	unix.SetKevent(&p.change[0], fd, unix.EVFILT_READ, unix.EV_DELETE|unix.EV_RECEIPT)
	unix.SetKevent(&p.change[1], fd, unix.EVFILT_WRITE, unix.EV_DELETE|unix.EV_RECEIPT)
	return p.submit("deregister", false)
}

// Wait blocks until at least one event is ready or timeout passes, and
// fills events. A negative timeout waits forever. An interrupted wait
// returns no events and no error.
func (p *Poller) wait(events *Events, timeout time.Duration) (int, error) {
	var ts *unix.Timespec
	var spec unix.Timespec
	if timeout >= 0 {
		spec = unix.NsecToTimespec(int64(timeout))
		ts = &spec
	}
	events.tokens = p.tokens
	n, err := unix.Kevent(p.kq, nil, events.raw, ts)
	if err != nil {
		events.n = 0
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, wrapErr("kevent", err)
	}
	events.n = n
	return n, nil
}

// Close releases the kqueue descriptor.
func (p *Poller) close() error {
	if p.kq < 0 {
		return nil
	}
	err := unix.Close(p.kq)
	p.kq = -1
	return err
}
