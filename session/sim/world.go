package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
	"golang.org/x/sys/unix"
)

// Prefix is the simulated network's address range (RFC 2544's
// benchmarking range): listeners and backends of a run use addresses in
// it; everything else stays on the kernel's network.
var Prefix = netip.MustParsePrefix("198.18.0.0/15")

// Addr is an address of the simulated network: host h (1-255 in the last
// octet of 198.18.0.h), port p.
func Addr(h uint8, p uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, h}), p)
}

// Actor is a client or a server of the world. Wake is called when
// something happened on one of its connections: bytes or a FIN arrived,
// a reset, room to write, the connect's outcome. It runs on the
// network's goroutine, between two events of the proxy.
type Actor interface {
	Wake(c *Conn)
}

// Conn is the world's end of a connection.
type Conn struct {
	n         *Net
	s         *sock
	actor     Actor
	out       []byte // queued by Send, written as the window allows
	closing   bool   // a FIN follows out
	gone      bool   // closed: no FIN to send, nothing to read
	scheduled bool
}

// Read takes every byte delivered so far.
func (c *Conn) Read() []byte {
	if len(c.s.in) == 0 {
		return nil
	}
	b := c.s.in
	c.s.in = nil
	c.n.roomFor(c.s.peer)
	return b
}

// Send queues p; the network writes it as the peer's window allows.
func (c *Conn) Send(p []byte) {
	if c.closing || c.gone {
		return
	}
	c.out = append(c.out, p...)
	c.flush()
}

// CloseWrite sends a FIN once the queued bytes are out.
func (c *Conn) CloseWrite() {
	c.closing = true
	c.flush()
}

// Close is CloseWrite, then the connection is forgotten: bytes that
// still come are answered with a reset, as by a kernel. With bytes
// unread it resets at once, what it had not sent yet dropped, as a
// kernel's close does: it does not wait for its queue to drain into a
// peer that may itself wait for this side to read.
func (c *Conn) Close() {
	c.gone = true
	if len(c.s.in) > 0 {
		c.out = nil
		c.n.closeSock(c.s)
		return
	}
	c.CloseWrite()
	if len(c.out) == 0 {
		c.n.closeSock(c.s)
	}
}

// Abort resets the connection now.
func (c *Conn) Abort() {
	if c.s.closed {
		return
	}
	c.out, c.gone = nil, true
	if !c.s.rst {
		c.n.resetFrom(c.s)
	}
	c.s.closed = true
}

// Pending is how many queued bytes the network has not taken yet.
func (c *Conn) Pending() int { return len(c.out) }

// EOF reports the peer's FIN (after every byte it sent was read).
func (c *Conn) EOF() bool { return c.s.eof && len(c.s.in) == 0 }

// Reset reports a reset from the peer, once what came before it was
// read.
func (c *Conn) Reset() bool { return c.s.rst && len(c.s.in) == 0 }

// Refused reports a connect nobody accepted.
func (c *Conn) Refused() bool { return c.s.refused }

// Established reports a connection that came up.
func (c *Conn) Established() bool { return c.s.state == stEstablished }

// Ended reports that nothing more will happen on the connection.
func (c *Conn) Ended() bool { return c.s.rst || c.s.refused || c.s.closed || c.EOF() && c.s.wclosed }

func (c *Conn) flush() {
	s := c.s
	if s.state != stEstablished || s.rst || s.closed {
		return
	}
	if len(c.out) > 0 {
		k := c.n.send(s, c.out)
		c.out = c.out[k:]
		if len(c.out) > 0 {
			s.blocked = true
			return
		}
		c.out = nil
	}
	if c.closing && !s.wclosed {
		c.n.shutdown(s)
	}
	if c.gone {
		c.n.closeSock(s)
	}
}

// wakeActor schedules c's actor for now.
func (n *Net) wakeActor(c *Conn) {
	if c.scheduled {
		return
	}
	c.scheduled = true
	n.After(0, func() {
		c.scheduled = false
		c.flush()
		if !c.gone {
			c.actor.Wake(c)
		}
	})
}

// server is a world service at an address: a backend.
type server struct {
	addr   netip.AddrPort
	accept func(c *Conn) Actor
	down   bool
}

// Serve has the world answer connects to addr: each accepted connection
// gets the actor accept returns.
func (n *Net) Serve(addr netip.AddrPort, accept func(c *Conn) Actor) {
	n.servers = append(n.servers, &server{addr: addr, accept: accept})
}

// SetDown makes connects to addr refused (down) or accepted again.
func (n *Net) SetDown(addr netip.AddrPort, down bool) {
	for _, s := range n.servers {
		if s.addr == addr {
			s.down = down
		}
	}
}

func (n *Net) server(addr netip.AddrPort) *server {
	for _, s := range n.servers {
		if s.addr == addr && !s.down {
			return s
		}
	}
	return nil
}

// Dial connects a client of the world to addr (a listener of the
// proxy): the actor is woken when the connect succeeds or fails.
func (n *Net) Dial(addr netip.AddrPort, a Actor) *Conn {
	n.nextPort++
	cs := &sock{n: n, state: stConnecting, local: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(n.nextPort >> 8), byte(n.nextPort)}), n.nextPort)}
	c := &Conn{n: n, s: cs, actor: a}
	cs.world = c
	n.After(n.delay(), func() {
		var l *sock
		for _, s := range n.socks {
			if s != nil && s.state == stListening && !s.closed && s.local == addr {
				l = s
				break
			}
		}
		if l == nil || cs.closed {
			cs.refused = true
			n.wakeActor(c)
			return
		}
		ss := n.newSock()
		ss.state, ss.local = stEstablished, addr
		cs.state = stEstablished
		n.pair(cs, ss)
		l.backlog = append(l.backlog, ss)
		n.raise(l, eventloop.Readable)
		n.wakeActor(c)
	})
	return c
}

// --- protocol.SimNet --------------------------------------------------------

// Owns implements protocol.SimNet.
func (n *Net) Owns(addr netip.AddrPort) bool { return Prefix.Contains(addr.Addr()) }

// Listen implements protocol.SimNet.
func (n *Net) Listen(addr netip.AddrPort) (int, error) {
	for _, s := range n.socks {
		if s != nil && s.state == stListening && s.local == addr {
			return -1, unix.EADDRINUSE
		}
	}
	if addr.Port() == 0 {
		n.nextPort++
		addr = netip.AddrPortFrom(addr.Addr(), n.nextPort)
	}
	s := n.newSock()
	s.state, s.local = stListening, addr
	return s.fd, nil
}

// Accept implements protocol.SimNet.
func (n *Net) Accept(lfd int) (int, netip.AddrPort, error) {
	l := n.sock(lfd)
	if l == nil || l.state != stListening {
		return -1, netip.AddrPort{}, unix.EBADF
	}
	if len(l.backlog) == 0 {
		return -1, netip.AddrPort{}, unix.EAGAIN
	}
	s := l.backlog[0]
	l.backlog = l.backlog[1:]
	if n.Verbose {
		n.Tracef("fd %d accepted from %v (window %d, the peer's %d)", s.fd, s.remote, s.window, s.peer.window)
	}
	return s.fd, s.remote, nil
}

// Connect implements protocol.SimNet: the proxy connects to a backend.
func (n *Net) Connect(addr netip.AddrPort) (int, error) {
	s := n.newSock()
	n.nextPort++
	s.state, s.local = stConnecting, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 255, 254}), n.nextPort)
	s.remote = addr
	if n.Verbose {
		n.Tracef("fd %d connects to %v", s.fd, addr)
	}
	n.After(n.delay(), func() {
		if s.closed {
			return
		}
		srv := n.server(addr)
		if srv == nil {
			s.refused = true
			n.raise(s, eventloop.Writable|eventloop.Error|eventloop.HangUp)
			return
		}
		ws := &sock{n: n, state: stEstablished, local: addr}
		c := &Conn{n: n, s: ws}
		ws.world = c
		s.state = stEstablished
		n.pair(s, ws)
		c.actor = srv.accept(c)
		n.raise(s, eventloop.Writable)
		n.wakeActor(c)
	})
	return s.fd, nil
}

// ConnectResult implements protocol.SimNet.
func (n *Net) ConnectResult(fd int) error {
	s := n.sock(fd)
	switch {
	case s == nil:
		return unix.EBADF
	case s.refused:
		return unix.ECONNREFUSED
	}
	return nil // as the kernel's SO_ERROR, also while still connecting
}

// Read implements protocol.SimNet.
func (n *Net) Read(fd int, p []byte) (int, error) {
	s := n.sock(fd)
	if s == nil {
		return -1, unix.EBADF
	}
	k, err := n.read(s, p)
	if err != nil {
		return -1, err
	}
	return k, nil
}

// Writev implements protocol.SimNet.
func (n *Net) Writev(fd int, bufs [][]byte) (int, error) {
	s := n.sock(fd)
	if s == nil {
		return -1, unix.EBADF
	}
	k, err := n.writev(s, bufs)
	if err != nil {
		return -1, err
	}
	return k, nil
}

// Shutdown implements protocol.SimNet.
func (n *Net) Shutdown(fd int) error {
	s := n.sock(fd)
	if s == nil {
		return unix.EBADF
	}
	if s.state != stEstablished {
		return unix.ENOTCONN
	}
	n.shutdown(s)
	return nil
}

// Close implements protocol.SimNet.
func (n *Net) Close(fd int) error {
	s := n.sock(fd)
	if s == nil {
		return unix.EBADF
	}
	n.closeSock(s)
	return nil
}

// LocalAddr implements protocol.SimNet.
func (n *Net) LocalAddr(fd int) (netip.AddrPort, error) {
	if s := n.sock(fd); s != nil {
		return s.local, nil
	}
	return netip.AddrPort{}, unix.EBADF
}

// PeerAddr implements protocol.SimNet.
func (n *Net) PeerAddr(fd int) (netip.AddrPort, error) {
	if s := n.sock(fd); s != nil && s.state == stEstablished {
		return s.remote, nil
	}
	return netip.AddrPort{}, unix.ENOTCONN
}

// --- a run -----------------------------------------------------------------

// Config readies a worker's configuration for this network: its poller
// and clock become the simulation's.
func (n *Net) Config(cfg session.Config) session.Config {
	cfg.Loop.Backend = poller{n}
	cfg.Loop.Timer.Now = n.Now
	cfg.Loop.NoLockOSThread = true
	return cfg
}

// ErrLeak is wrapped by Run's error when the worker left sockets,
// sessions, tokens or buffers behind.
var ErrLeak = errors.New("sim: leaked")

// Run drives w (made with n.Config) on the calling goroutine until it
// stops. start runs on the loop first: add listeners, clusters and the
// world's actors there (commands run at once on the loop). idle is
// called whenever the world has nothing scheduled: it may schedule more,
// stop the worker (a soft stop, to check that nothing in flight is
// lost) or fail the run; if it does none of these while the proxy waits
// with no timer, the run is stuck and fails. Run returns the first
// failure ([Net.Fail]), or a leak or a session's panic found once the
// worker stopped.
func (n *Net) Run(w *session.Worker, start func(), idle func()) error {
	restore := protocol.UseSimNet(n)
	defer restore()
	n.stopLoop = func() { w.HardStop() }
	started := false
	n.idle = func() {
		if started {
			idle()
		}
	}
	// The first batch of the loop records its goroutine; commands in
	// start then run at once on it.
	n.After(time.Millisecond, func() { started = true; start() })
	err := w.Run()
	// The proxy is gone; what it sent is still on the way, and the
	// world's actors see it arrive, or the resets.
	for steps := 0; len(n.queue) > 0 && n.failure == nil && steps < 1_000_000; steps++ {
		n.settle()
		next := heap.Pop(&n.queue).(*action)
		if next.at.After(n.now) {
			n.now = next.at
		}
		next.f()
	}
	if n.failure != nil {
		return n.failure
	}
	if err != nil {
		return fmt.Errorf("seed %d: the worker failed: %w", n.seed, err)
	}
	st, _ := w.Status()
	if st.Panics != 0 {
		return fmt.Errorf("seed %d: %d sessions panicked (the worker closed them)", n.seed, st.Panics)
	}
	if n.open != 0 || st.Sessions != 0 || st.BuffersLent != 0 {
		return fmt.Errorf("seed %d: %w: %d sockets open, %d sessions, %d tokens, %d buffers lent", n.seed, ErrLeak, n.open, st.Sessions, st.Tokens, st.BuffersLent)
	}
	return nil
}
