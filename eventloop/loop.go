//go:build linux || darwin || freebsd || openbsd || dragonfly

package eventloop

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/timer"
)

// Handler receives what a [Loop] dispatches. Every method runs on the
// loop's goroutine, one call at a time, so a handler needs no locks for
// the state it shares with the loop.
type Handler interface {
	// Event reports readiness for a registered token.
	Event(t Token, r Ready)
	// Timeout reports that a timer scheduled on [Loop.Timers] fired:
	// the timer named name of token t.
	Timeout(t Token, name TimerName)
	// Panic reports a panic the loop recovered from inside Event,
	// Timeout or posted work (t is [NoToken] for posted work). The owner
	// decides what to close; the loop goes on with the next event.
	Panic(t Token, v any, stack []byte)
}

// BatchEnder is an optional [Handler] ability: EndBatch runs after each
// round of events, timers and posted work, before the loop waits again.
// A worker uses it for work that must not happen mid-batch, such as
// freeing the tokens of sessions closed during the batch (an event for a
// closed session's token may still be further down the same batch).
type BatchEnder interface {
	EndBatch()
}

// Config holds a loop's settings. The zero value is usable.
type Config struct {
	// Events is how many events one Wait may return. Default 256.
	Events int
	// Timer configures the loop's timer wheel (tick, slots, clock).
	// Defaults: see [timer.Config].
	Timer timer.Config
	// NoLockOSThread leaves the loop's goroutine free to move between
	// OS threads. By default Run locks it to its thread, which keeps the
	// loop's data and the kernel's per-thread state hot in one place.
	NoLockOSThread bool
	// Backend replaces the kernel's poller with a simulation (see
	// [Backend]); nil in production.
	Backend Backend
}

// Loop is one event loop: a poller, a waker, a timer wheel keyed by
// token and timer name, and a queue of work posted from other goroutines. Everything a
// loop owns is touched only on the goroutine that calls [Loop.Run];
// other goroutines talk to it through [Loop.Post] and [Loop.Stop].
type Loop struct {
	poller *Poller
	waker  *Waker
	events *Events
	timers *timer.Wheel[TimerKey]
	cfg    Config

	running  atomic.Bool
	stopping atomic.Bool
	done     chan struct{}

	mu     sync.Mutex
	queue  []func()
	spare  []func()
	closed bool

	// cursor is the index of the item being dispatched, read by the
	// recover path to resume after it.
	cursor int
	now    time.Time
}

// New creates a loop with its poller, waker and timer wheel. Until Run is
// called nothing is dispatched, but descriptors may be registered and
// work posted.
func New(cfg Config) (*Loop, error) {
	p, err := newPoller(cfg.Backend)
	if err != nil {
		return nil, err
	}
	w, err := newWaker(p, wakerToken)
	if err != nil {
		p.Close()
		return nil, err
	}
	l := &Loop{
		poller: p,
		waker:  w,
		events: NewEvents(cfg.Events),
		timers: timer.New[TimerKey](cfg.Timer),
		cfg:    cfg,
		done:   make(chan struct{}),
		queue:  make([]func(), 0, 64),
		spare:  make([]func(), 0, 64),
	}
	l.now = l.timers.Now()
	return l, nil
}

// Poller is the loop's poller, for registering descriptors. Use it only
// on the loop's goroutine once Run has started.
func (l *Loop) Poller() *Poller { return l.poller }

// Timers is the loop's timer wheel; fired keys arrive at
// [Handler.Timeout]. Use it only on the loop's goroutine once Run has
// started.
func (l *Loop) Timers() *timer.Wheel[TimerKey] { return l.timers }

// Now is the time the loop read when the current batch began; cheaper
// than a clock read per event and precise enough for idle bookkeeping.
func (l *Loop) Now() time.Time { return l.now }

// Done is closed when Run has returned and the loop's poller and waker
// are closed.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Post queues f to run on the loop's goroutine after the current batch
// of events, and wakes the loop. It is safe for concurrent use. Work
// posted before the loop stops always runs, even while the loop shuts
// down; after that Post returns [ErrClosed].
func (l *Loop) Post(f func()) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	l.waker.Wake()
	return nil
}

// Stop asks the loop to return from Run after its current batch. It is
// safe for concurrent use, idempotent, and does not wait: receive from
// [Loop.Done] for that.
func (l *Loop) Stop() {
	l.stopping.Store(true)
	l.waker.Wake()
}

// Run dispatches events, timers and posted work to h until Stop is
// called or the poller fails. On return the poller and the waker are
// closed; descriptors registered by the handler are the handler's to
// close (it is still the owner of those when Run returns).
func (l *Loop) Run(h Handler) error {
	if !l.running.CompareAndSwap(false, true) {
		if l.stopped() {
			return ErrClosed
		}
		return ErrRunning
	}
	if !l.cfg.NoLockOSThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	defer l.shutdown(h)
	ender, _ := h.(BatchEnder)
	for !l.stopping.Load() {
		if _, err := l.poller.Wait(l.events, l.waitTimeout()); err != nil {
			return err
		}
		l.now = l.timers.Now()
		for i := 0; i < l.events.Len(); {
			i = l.dispatchEvents(h, i)
		}
		for l.fireTimers(h) {
		}
		l.runPosted(h)
		if ender != nil {
			ender.EndBatch()
		}
	}
	return nil
}

func (l *Loop) stopped() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// waitTimeout is how long Wait may sleep: until the next timer, or not at
// all when work is already queued.
func (l *Loop) waitTimeout() time.Duration {
	if l.stopping.Load() {
		return 0
	}
	at, ok := l.timers.NextDeadline()
	if !ok {
		return -1
	}
	d := at.Sub(l.timers.Now())
	if d < 0 {
		return 0
	}
	return d
}

// dispatchEvents delivers events from index start on and returns the
// index to resume from: the end, or one past an event whose handler
// panicked. One deferred recover covers the whole batch, so the common
// path pays nothing per event.
func (l *Loop) dispatchEvents(h Handler, start int) (next int) {
	l.cursor = start
	var t Token
	defer func() {
		if v := recover(); v != nil {
			next = l.cursor + 1
			h.Panic(t, v, debug.Stack())
		}
	}()
	n := l.events.Len()
	for ; l.cursor < n; l.cursor++ {
		var r Ready
		t, r = l.events.Get(l.cursor)
		switch t {
		case wakerToken:
			l.waker.reset()
		case NoToken:
			// An event raced with a deregistration (kqueue's table).
		default:
			h.Event(t, r)
		}
	}
	return n
}

// fireTimers delivers every timer due now. It reports true when it
// stopped early because a handler panicked, so the caller calls again.
func (l *Loop) fireTimers(h Handler) (again bool) {
	var k TimerKey
	defer func() {
		if v := recover(); v != nil {
			again = true
			h.Panic(k.Token, v, debug.Stack())
		}
	}()
	// The batch's time: a timer due during the batch fires next round.
	now := l.now
	for {
		var ok bool
		k, ok = l.timers.Poll(now)
		if !ok {
			return false
		}
		h.Timeout(k.Token, k.Name)
	}
}

// runPosted runs the work queued so far. Work posted while it runs waits
// for the next round, so a handler that posts to its own loop cannot
// starve the poller.
func (l *Loop) runPosted(h Handler) {
	l.mu.Lock()
	work := l.queue
	l.queue, l.spare = l.spare[:0], nil
	l.mu.Unlock()
	for i := 0; i < len(work); {
		i = l.runFrom(h, work, i)
	}
	clear(work)
	l.mu.Lock()
	l.spare = work[:0]
	l.mu.Unlock()
}

func (l *Loop) runFrom(h Handler, work []func(), start int) (next int) {
	l.cursor = start
	defer func() {
		if v := recover(); v != nil {
			next = l.cursor + 1
			h.Panic(NoToken, v, debug.Stack())
		}
	}()
	for ; l.cursor < len(work); l.cursor++ {
		work[l.cursor]()
	}
	return len(work)
}

// shutdown runs what was posted before the stop (so that callers waiting
// on a reply are answered), refuses later posts, and closes the waker and
// the poller.
func (l *Loop) shutdown(h Handler) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	for {
		l.mu.Lock()
		empty := len(l.queue) == 0
		l.mu.Unlock()
		if empty {
			break
		}
		l.runPosted(h)
	}
	l.waker.close()
	l.poller.Close()
	close(l.done)
}

// Close releases a loop that was created but never run. A loop that ran
// closes itself when Run returns.
func (l *Loop) Close() error {
	if !l.running.CompareAndSwap(false, true) {
		return nil
	}
	l.mu.Lock()
	l.closed = true
	l.queue = nil
	l.mu.Unlock()
	l.waker.close()
	err := l.poller.Close()
	close(l.done)
	return err
}
