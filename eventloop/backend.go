//go:build linux || darwin || freebsd || openbsd || dragonfly

package eventloop

import "time"

// Backend stands in for the kernel under a loop: a simulation (package
// session/sim) delivers readiness for descriptors of its own, on its own
// clock, so that a loop and its sessions run deterministically over an
// in-memory network. Set it in [Config.Backend]; production leaves it
// nil. Its methods are called on the loop's goroutine, except Wake.
type Backend interface {
	// Register, Reregister and Deregister follow the Poller's methods:
	// edge-triggered interest in fd under token t.
	Register(fd int, t Token, i Interest) error
	Reregister(fd int, t Token, i Interest) error
	Deregister(fd int) error
	// Wait reports ready tokens through emit (at most max of them) and
	// returns; it may move its own world and clock forward first, but by
	// no more than timeout (negative: no limit) when it reports nothing.
	Wait(emit func(Token, Ready), max int, timeout time.Duration) error
	// Wake makes the current or next Wait return at once, so that the
	// loop runs the work posted to it. Safe for concurrent use.
	Wake()
	// Close releases the backend when the loop ends.
	Close() error
}

type simEvent struct {
	t Token
	r Ready
}

// NewPoller creates a poller on the kernel's epoll (Linux) or kqueue.
func NewPoller() (*Poller, error) { return newKernelPoller() }

func newPoller(b Backend) (*Poller, error) {
	if b != nil {
		return &Poller{sim: b}, nil
	}
	return newKernelPoller()
}

// Register adds fd with token t and interest i. The token is what every
// event for fd carries; t must not exceed [MaxToken].
func (p *Poller) Register(fd int, t Token, i Interest) error {
	switch {
	case t > MaxToken:
		return ErrReservedToken
	case p.sim != nil:
		return p.sim.Register(fd, t, i)
	}
	return p.register(fd, t, i)
}

// Reregister changes the token or interest of a registered fd.
func (p *Poller) Reregister(fd int, t Token, i Interest) error {
	switch {
	case t > MaxToken:
		return ErrReservedToken
	case p.sim != nil:
		return p.sim.Reregister(fd, t, i)
	}
	return p.reregister(fd, t, i)
}

// Deregister removes fd. Closing a descriptor also removes it, but only
// once every duplicate is closed, so sessions deregister explicitly.
func (p *Poller) Deregister(fd int) error {
	if p.sim != nil {
		return p.sim.Deregister(fd)
	}
	return p.deregister(fd)
}

// Wait blocks until at least one event is ready or timeout passes, and
// fills events. A negative timeout waits forever; timeouts are rounded up
// to whole milliseconds so a timer is never woken for early. An
// interrupted wait returns no events and no error.
func (p *Poller) Wait(events *Events, timeout time.Duration) (int, error) {
	if p.sim == nil {
		return p.wait(events, timeout)
	}
	events.sim = events.sim[:0]
	err := p.sim.Wait(func(t Token, r Ready) {
		events.sim = append(events.sim, simEvent{t, r})
	}, len(events.raw), timeout)
	events.n = len(events.sim)
	return events.n, err
}

// Close releases the poller.
func (p *Poller) Close() error {
	if p.sim != nil {
		return p.sim.Close()
	}
	return p.close()
}

// Get returns the token and readiness of event i, 0 <= i < Len().
func (e *Events) Get(i int) (Token, Ready) {
	if e.sim != nil {
		ev := e.sim[i]
		return ev.t, ev.r
	}
	return e.get(i)
}

func newWaker(p *Poller, t Token) (*Waker, error) {
	if p.sim != nil {
		return &Waker{sim: p.sim}, nil
	}
	return newKernelWaker(p, t)
}

// Wake makes the loop's current or next Wait return. Safe for concurrent
// use.
func (w *Waker) Wake() {
	if w.sim != nil {
		w.sim.Wake()
		return
	}
	w.wake()
}

// reset is called by the loop when the waker's event arrives.
func (w *Waker) reset() {
	if w.sim == nil {
		w.resetKernel()
	}
}

func (w *Waker) close() error {
	if w.sim != nil {
		return nil
	}
	return w.closeKernel()
}
