// Package sim runs real sessions over a simulated network: an in-memory
// TCP network, an edge-triggered poller over it and a clock, all on one
// goroutine and driven by one seed, so that a run explores interleavings
// a loopback test rarely meets (bytes arriving one at a time, full send
// buffers, a reset between two events, a timer due in the same batch as
// the event it guards) and a failing seed replays.
//
// A run has two sides. The proxy side is a real [session.Worker] with
// real sessions (tcpproxy, httpproxy, a user's own): its sockets, poller
// and clock are the simulation's ([protocol.UseSimNet],
// [eventloop.Backend], the timer wheel's clock). The world side is the
// clients and servers, written as [Actor]s that the network wakes when
// something happens on their connections. The seed chooses the faults
// ([Faults]): how bytes are cut into segments and delayed, how much a
// send buffer takes, connects refused or slow, resets, and the order of
// whatever happens at the same instant.
//
// Sim is for tests: a process runs one simulation at a time.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
	"golang.org/x/sys/unix"
)

// Faults are the kinds of trouble a seed may choose. The zero value is a
// well-behaved network; [AllFaults] turns every kind on.
type Faults struct {
	// Segments cuts what a write sends into segments down to one byte,
	// each delivered on its own (a new readable edge each).
	Segments bool
	// Delays delivers segments, FINs, resets and connects after up to
	// MaxDelay instead of at once.
	Delays bool
	// SmallWindows gives each connection a receive window from one byte
	// up, so writes are partial and would-block often.
	SmallWindows bool
	// SpuriousEvents reports readiness nothing changed (edge-triggered
	// pollers may), which a session must shrug off.
	SpuriousEvents bool
	// ClockJumps moves the clock, once in some runs, half a minute to
	// five minutes ahead between two events while bytes are in flight
	// (a stalled process, a suspended VM): every timer due fires at once.
	// Scenarios then accept the timeouts' answers ([Net.Jumped]).
	ClockJumps bool
	// MaxDelay bounds Delays (default 20 ms).
	MaxDelay time.Duration
}

// AllFaults turns every kind of fault on.
var AllFaults = Faults{Segments: true, Delays: true, SmallWindows: true, SpuriousEvents: true, ClockJumps: true}

// Net is one simulated network and its clock.
type Net struct {
	rng      *rand.Rand
	seed     uint64
	faults   Faults
	now      time.Time
	seq      uint64
	queue    actions
	socks    []*sock // by fd - protocol.SimFD
	open     int     // proxy-side sockets open
	servers  []*server
	ready    []*sock // proxy sockets with events to report
	woken    atomic.Bool
	nextPort uint16
	steps    int
	maxSteps int
	idle     func() // the scenario's say when nothing is scheduled
	failure  error
	trace    []string
	stopLoop func()

	// Verbose traces every socket call and event (for replaying a seed).
	Verbose bool

	settlers []settler
	jumpAt   int  // the step at which the clock jumps (0: never)
	jumped   bool // it did
}

// Jumped reports whether the clock jumped in this run (Faults.ClockJumps):
// answers a timeout gives are then expected.
func (n *Net) Jumped() bool { return n.jumped }

// settler is work on other goroutines the world waits for: busy reports
// whether it is still running, pump moves its results into the world.
type settler struct {
	busy func() bool
	pump func()
}

// Settle registers work that runs on goroutines of its own (a TLS
// handshake in crypto/tls, a blocking client): before each step the
// network waits until busy reports false, then calls pump, so that such
// work happens at the same point of every replay. tlsconn's handshakes
// are settled this way always.
func (n *Net) Settle(busy func() bool, pump func()) {
	n.settlers = append(n.settlers, settler{busy, pump})
}

// settle waits for the goroutines the run depends on to be idle, and
// pumps their results into the world, until pumping wakes none of them.
func (n *Net) settle() {
	idle := func() bool {
		ok := tlsconn.Busy() == 0
		for _, s := range n.settlers {
			ok = ok && !s.busy()
		}
		return ok
	}
	for rounds := 0; ; rounds++ {
		for spins := 0; !idle(); spins++ {
			if spins > 2_000_000 {
				n.Fail("a goroutine the run waits for never settled")
				return
			}
			runtime.Gosched()
		}
		for _, s := range n.settlers {
			if s.pump != nil {
				s.pump()
			}
		}
		if idle() || rounds > 1000 {
			return
		}
	}
}

// New returns a network whose every choice follows seed.
func New(seed uint64, f Faults) *Net {
	if f.MaxDelay <= 0 {
		f.MaxDelay = 20 * time.Millisecond
	}
	n := &Net{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)),
		seed:     seed,
		faults:   f,
		now:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		nextPort: 40000,
		maxSteps: 2_000_000,
	}
	if f.ClockJumps && n.rng.IntN(8) == 0 {
		n.jumpAt = 20 + n.rng.IntN(400)
	}
	return n
}

// Now is the simulated clock, for the timer wheel.
func (n *Net) Now() time.Time { return n.now }

// Rand is the network's random source: a scenario that draws from it
// stays a function of the seed.
func (n *Net) Rand() *rand.Rand { return n.rng }

// Fail records that an invariant broke; the run stops with it.
func (n *Net) Fail(format string, args ...any) {
	if n.failure == nil {
		n.failure = fmt.Errorf("seed %d at %v: %s", n.seed, n.now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), fmt.Sprintf(format, args...))
		if n.stopLoop != nil {
			n.stopLoop()
		}
	}
}

// Tracef keeps a line for the report of a failing seed (the last 200).
func (n *Net) Tracef(format string, args ...any) {
	if keep := 200; len(n.trace) >= keep && !n.Verbose || len(n.trace) >= 100000 {
		n.trace = n.trace[1:]
	}
	n.trace = append(n.trace, fmt.Sprintf("%9.3fms ", float64(n.now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))/1e6)+fmt.Sprintf(format, args...))
}

// Trace is what Tracef kept, one line each.
func (n *Net) Trace() string { return strings.Join(n.trace, "\n") }

// After runs f on the world's side once d has passed.
func (n *Net) After(d time.Duration, f func()) {
	n.seq++
	heap.Push(&n.queue, &action{at: n.now.Add(d), seq: n.seq, f: f})
}

// delay is a fault's delay: none, or up to MaxDelay.
func (n *Net) delay() time.Duration {
	if !n.faults.Delays || n.rng.IntN(3) == 0 {
		return 0
	}
	return time.Duration(n.rng.Int64N(int64(n.faults.MaxDelay))) + time.Microsecond
}

// --- the scheduler --------------------------------------------------------

type action struct {
	at  time.Time
	seq uint64
	f   func()
}

type actions []*action

func (a actions) Len() int { return len(a) }
func (a actions) Less(i, j int) bool {
	if !a[i].at.Equal(a[j].at) {
		return a[i].at.Before(a[j].at)
	}
	return a[i].seq < a[j].seq
}
func (a actions) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *actions) Push(x any)   { *a = append(*a, x.(*action)) }
func (a *actions) Pop() any {
	old := *a
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*a = old[:len(old)-1]
	return x
}

// --- the poller (eventloop.Backend) --------------------------------------

// poller is the network's face to the loop.
type poller struct{ *Net }

// Register implements eventloop.Backend.
func (p poller) Register(fd int, t eventloop.Token, i eventloop.Interest) error {
	n := p.Net
	s := n.sock(fd)
	if s == nil {
		return unix.EBADF
	}
	if s.registered {
		return unix.EEXIST
	}
	s.registered, s.token, s.interest = true, t, i
	n.armed(s)
	return nil
}

// Reregister implements eventloop.Backend.
func (p poller) Reregister(fd int, t eventloop.Token, i eventloop.Interest) error {
	n := p.Net
	s := n.sock(fd)
	if s == nil || !s.registered {
		return unix.ENOENT
	}
	s.token, s.interest = t, i
	n.armed(s)
	return nil
}

// armed reports a socket's current readiness, as epoll does when a
// registration is added or changed.
func (n *Net) armed(s *sock) {
	var r eventloop.Ready
	if s.readable() {
		r |= eventloop.Readable
	}
	if s.writable() {
		r |= eventloop.Writable
	}
	if s.eof {
		r |= eventloop.ReadClosed
	}
	if s.rst || s.refused {
		r |= eventloop.Error | eventloop.HangUp
	}
	if r != 0 {
		n.raise(s, r)
	}
}

// Deregister implements eventloop.Backend.
func (p poller) Deregister(fd int) error {
	n := p.Net
	s := n.sock(fd)
	if s == nil || !s.registered {
		return unix.ENOENT
	}
	s.registered, s.pending = false, 0
	return nil
}

// Wake implements eventloop.Backend.
func (p poller) Wake() { p.woken.Store(true) }

// Close implements eventloop.Backend.
func (p poller) Close() error { return nil }

// raise records events for a proxy socket, reported at the next Wait.
func (n *Net) raise(s *sock, r eventloop.Ready) {
	if s.world != nil {
		n.wakeActor(s.world)
		return
	}
	if !s.registered {
		return
	}
	if s.interest&eventloop.InterestRead == 0 {
		r &^= eventloop.Readable | eventloop.Priority
	}
	if s.interest&eventloop.InterestWrite == 0 {
		r &^= eventloop.Writable
	}
	if r == 0 {
		return
	}
	if n.Verbose {
		n.Tracef("fd %d event %v", s.fd, r)
	}
	s.pending |= r
	if !s.queued {
		s.queued = true
		n.ready = append(n.ready, s)
	}
}

// Wait implements eventloop.Backend: it reports what is ready, or runs
// the world until something is, moving the clock to each next action
// but never past the loop's timeout.
func (p poller) Wait(emit func(eventloop.Token, eventloop.Ready), max int, timeout time.Duration) error {
	n := p.Net
	for {
		n.settle()
		n.steps++
		if n.steps > n.maxSteps && n.failure == nil {
			n.Fail("no end after %d steps: a livelock", n.maxSteps)
		}
		if n.failure != nil {
			return nil
		}
		if len(n.ready) > 0 {
			n.report(emit, max)
			return nil
		}
		if n.woken.Swap(false) || timeout == 0 {
			return nil
		}
		if len(n.queue) == 0 {
			if n.idle != nil {
				n.idle() // the scenario may schedule more, start a stop, or fail
				if len(n.queue) > 0 || len(n.ready) > 0 || n.woken.Load() || n.failure != nil {
					n.report(emit, max)
					return nil // the loop looks at its timers again: a command may have set one
				}
			}
			if timeout < 0 {
				n.Fail("stuck: the proxy waits with no timer and nothing in flight")
				continue
			}
			n.now = n.now.Add(roundUp(timeout))
			return nil
		}
		next := n.queue[0]
		if timeout > 0 && next.at.After(n.now.Add(roundUp(timeout))) {
			n.now = n.now.Add(roundUp(timeout))
			return nil
		}
		heap.Pop(&n.queue)
		if next.at.After(n.now) {
			n.now = next.at
		}
		if n.jumpAt > 0 && n.steps >= n.jumpAt && !n.jumped {
			// Everything in flight is late at once: the world's actions
			// run in their order as soon as they can, and every timer of
			// the proxy is due. (Deliveries keep their order: new ones
			// come after what was queued before.)
			n.jumped = true
			d := 30*time.Second + time.Duration(n.rng.Int64N(int64(270*time.Second)))
			n.Tracef("the clock jumps %v", d)
			n.now = n.now.Add(d)
		}
		next.f()
		if n.faults.SpuriousEvents && n.open > 0 && n.rng.IntN(50) == 0 {
			n.spurious()
		}
		// One world action per Wait: the loop then handles what it
		// raised, and looks at its timers again (an action may have run
		// a command that set one).
		n.report(emit, max)
		return nil
	}
}

func roundUp(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1) / time.Millisecond * time.Millisecond
}

// report hands up to max events to the loop, in an order the seed
// chooses among those raised together.
func (n *Net) report(emit func(eventloop.Token, eventloop.Ready), max int) {
	if len(n.ready) > 1 {
		n.rng.Shuffle(len(n.ready), func(i, j int) { n.ready[i], n.ready[j] = n.ready[j], n.ready[i] })
	}
	k := min(max, len(n.ready))
	for _, s := range n.ready[:k] {
		r := s.pending
		s.pending, s.queued = 0, false
		if s.registered && r != 0 {
			emit(s.token, r)
		}
	}
	n.ready = append(n.ready[:0], n.ready[k:]...)
}

// spurious reports readiness nothing changed on a random socket (a
// stale event: what raised it was consumed in the same batch).
func (n *Net) spurious() {
	s := n.socks[n.rng.IntN(len(n.socks))]
	// Not on a socket still connecting: epoll reports its writable edge
	// only once the connect is over, and a session may rely on that.
	if s != nil && s.registered && !s.closed && s.state != stConnecting {
		n.raise(s, eventloop.Readable|eventloop.Writable)
	}
}

// --- sockets ---------------------------------------------------------------

type sockState uint8

const (
	stConnecting sockState = iota
	stEstablished
	stListening
)

type sock struct {
	fd            int
	n             *Net
	state         sockState
	local, remote netip.AddrPort
	peer          *sock

	in       []byte // delivered, unread
	window   int    // receive window: unread plus in flight to us
	inflight int    // bytes we sent that are not delivered yet
	eof      bool   // the peer's FIN arrived, after its bytes
	rst      bool   // a reset arrived
	refused  bool   // the connect failed
	wclosed  bool   // our FIN is sent
	closed   bool
	blocked  bool // a write would block: the next room raises Writable
	lastAt   time.Time
	epoch    int // a reset bumps it: data sent before and not yet delivered is lost

	backlog []*sock // a listening socket's accepted-to-be

	registered bool
	token      eventloop.Token
	interest   eventloop.Interest
	pending    eventloop.Ready
	queued     bool

	world *Conn // the world's end of a connection
}

func (s *sock) readable() bool {
	return len(s.in) > 0 || s.eof || s.rst || s.state == stListening && len(s.backlog) > 0
}

func (s *sock) writable() bool {
	return s.state == stEstablished && !s.wclosed && (s.peer == nil || s.room() > 0) || s.rst || s.refused
}

// room is what our peer's window still takes.
func (s *sock) room() int {
	if s.peer == nil {
		return 0
	}
	return s.peer.window - len(s.peer.in) - s.inflight
}

func (n *Net) sock(fd int) *sock {
	i := fd - protocol.SimFD
	if i < 0 || i >= len(n.socks) {
		return nil
	}
	return n.socks[i]
}

// newSock makes a proxy-side socket with a descriptor.
func (n *Net) newSock() *sock {
	s := &sock{n: n, fd: protocol.SimFD + len(n.socks)}
	n.socks = append(n.socks, s)
	n.open++
	return s
}

func (n *Net) window() int {
	if !n.faults.SmallWindows || n.rng.IntN(3) == 0 {
		return 256 << 10
	}
	if n.rng.IntN(8) == 0 {
		// A few bytes at a time: slow, so rarer, and no smaller than a
		// real TCP peer's worst (segments still come a byte at a time).
		return 16 + n.rng.IntN(48)
	}
	return 1 + n.rng.IntN(1<<uint(8+n.rng.IntN(9)))
}

// pair connects a and b both ways.
func (n *Net) pair(a, b *sock) {
	a.peer, b.peer = b, a
	a.remote, b.remote = b.local, a.local
	a.window, b.window = n.window(), n.window()
}

// send moves p from s toward its peer as segments; it returns how much
// the peer's window took.
func (n *Net) send(s *sock, p []byte) int {
	k := min(len(p), s.room())
	if k <= 0 {
		return 0
	}
	data := append([]byte(nil), p[:k]...)
	s.inflight += k
	ep := s.epoch
	for len(data) > 0 {
		seg := len(data)
		if n.faults.Segments && n.rng.IntN(2) == 0 {
			seg = 1 + n.rng.IntN(len(data))
		}
		chunk := data[:seg]
		data = data[seg:]
		n.deliver(s, func(to *sock) {
			s.inflight -= len(chunk)
			if s.epoch != ep {
				return // s reset the connection: what it had not sent is gone
			}
			if to.closed {
				n.resetFrom(to) // bytes to a closed socket: the kernel answers RST
				return
			}
			if to.rst {
				return
			}
			to.in = append(to.in, chunk...)
			n.raise(to, eventloop.Readable)
		})
	}
	return k
}

// deliver runs f on s's peer after a delay, in order with what s sent
// before.
func (n *Net) deliver(s *sock, f func(to *sock)) {
	at := n.now.Add(n.delay())
	if at.Before(s.lastAt) {
		at = s.lastAt
	}
	s.lastAt = at
	to := s.peer
	n.After(at.Sub(n.now), func() { f(to) })
}

// read takes delivered bytes.
func (n *Net) read(s *sock, p []byte) (int, error) {
	// As Linux: what arrived before a reset is still read, then the
	// reset is reported.
	if len(s.in) == 0 {
		switch {
		case s.rst:
			return 0, unix.ECONNRESET
		case s.eof:
			return 0, nil
		}
		return 0, unix.EAGAIN
	}
	k := copy(p, s.in)
	s.in = s.in[k:]
	if n.Verbose {
		n.Tracef("fd %d read %d of %d (left %d) %q", s.fd, k, len(p), len(s.in), p[:min(k, 64)])
	}
	if len(s.in) == 0 {
		s.in = nil
	}
	n.roomFor(s.peer)
	return k, nil
}

// roomFor raises a writable edge for p if it was blocked and its peer's
// reads made room again.
func (n *Net) roomFor(p *sock) {
	if p != nil && p.blocked && p.room() > 0 {
		p.blocked = false
		n.raise(p, eventloop.Writable)
	}
}

func (n *Net) writev(s *sock, bufs [][]byte) (int, error) {
	switch {
	case s.rst:
		return 0, unix.ECONNRESET
	case s.wclosed || s.state != stEstablished:
		return 0, unix.EPIPE
	}
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		k := n.send(s, b)
		total += k
		if k < len(b) {
			break
		}
	}
	if n.Verbose {
		n.Tracef("fd %d writev %d (room now %d)", s.fd, total, s.room())
	}
	if total == 0 {
		s.blocked = true
		return 0, unix.EAGAIN
	}
	return total, nil
}

// shutdown sends our FIN after what we sent.
func (n *Net) shutdown(s *sock) {
	if s.wclosed || s.peer == nil || s.rst {
		s.wclosed = true
		return
	}
	s.wclosed = true
	if n.Verbose {
		n.Tracef("fd %d FIN", s.fd)
	}
	n.deliver(s, func(to *sock) {
		if to.closed || to.rst {
			return
		}
		to.eof = true
		n.raise(to, eventloop.Readable|eventloop.ReadClosed)
	})
}

// resetFrom sends a reset from s to its peer.
func (n *Net) resetFrom(s *sock) {
	p := s.peer
	if p == nil {
		return
	}
	// In order after what s sent before: a reset does not overtake the
	// data and FIN ahead of it.
	n.deliver(s, func(p *sock) {
		if p.closed || p.rst {
			return
		}
		p.rst = true
		n.raise(p, eventloop.Readable|eventloop.Writable|eventloop.Error|eventloop.HangUp)
	})
}

// closeSock closes s: unread bytes make it a reset, else a FIN.
func (n *Net) closeSock(s *sock) {
	if s.closed {
		return
	}
	switch {
	case s.state == stListening:
		for _, b := range s.backlog {
			n.closeSock(b)
		}
		s.backlog = nil
	case len(s.in) > 0 && !s.rst:
		// Closed with bytes unread: the kernel answers with a reset,
		// and drops what it had not sent yet (a response still in the
		// send buffer is lost: what lingering closes are for).
		s.epoch++
		n.resetFrom(s)
	case !s.rst && !s.refused:
		n.shutdown(s)
	}
	if n.Verbose {
		n.Tracef("fd %d close (unread %d)", s.fd, len(s.in))
	}
	s.closed, s.registered, s.pending = true, false, 0
	s.in = nil
	if s.world == nil && s.fd >= protocol.SimFD {
		n.socks[s.fd-protocol.SimFD] = nil
		n.open--
	}
}
