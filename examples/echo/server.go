package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/slab"
	"github.com/sluiceproxy/sluice/timer"
)

// config is the echo server's settings.
type config struct {
	listen      netip.AddrPort
	idleTimeout time.Duration // a client silent this long is closed
	maxConns    int           // accepted connections beyond this are closed at once
	logger      *slog.Logger
}

// listenerToken and retryToken sit above every connection's token: the
// slab hands connections small keys from 0 up.
const (
	listenerToken = eventloop.MaxToken
	retryToken    = eventloop.MaxToken - 1
	readBufSize   = 64 << 10
)

// conn is one client. An idle conn holds its socket, its timer handle
// and nothing else: bytes that could not be echoed at once go to a
// buffer borrowed from the server only while they wait.
type conn struct {
	sock     protocol.TCPSocket
	idle     timer.Handle
	seen     time.Time // last byte from the client: the idle timer is pushed back from it when it fires
	pending  []byte    // unsent echo, a slice of a borrowed buffer
	borrowed []byte    // the borrowed buffer itself, nil when idle
	ready    protocol.Readiness
	eof      bool // the client shut down its side: flush, then close
	closed   bool
}

// stats are read after the loop stops, or from the loop itself.
type stats struct {
	accepted, closed, timedOut, refused, panics int
	bytes                                       int64
}

// server is an echo server on one event loop: the smallest complete
// use of eventloop, slab and timer.
type server struct {
	cfg    config
	loop   *eventloop.Loop
	lfd    int
	addr   netip.AddrPort
	conns  *slab.Slab[conn]
	buf    []byte   // the loop's one read buffer, shared by all conns
	spare  [][]byte // free pending buffers
	doomed []int    // keys closed this batch, freed at its end
	stats  stats
	log    *slog.Logger
}

func newServer(cfg config) (*server, error) {
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.maxConns <= 0 {
		cfg.maxConns = 10000
	}
	loop, err := eventloop.New(eventloop.Config{})
	if err != nil {
		return nil, err
	}
	lfd, err := protocol.Listen(cfg.listen, protocol.ListenConfig{})
	if err != nil {
		loop.Close()
		return nil, err
	}
	addr, _ := protocol.LocalAddr(lfd)
	if err := loop.Poller().Register(lfd, listenerToken, eventloop.InterestRead); err != nil {
		loop.Close()
		closeFD(lfd)
		return nil, err
	}
	return &server{
		cfg:   cfg,
		loop:  loop,
		lfd:   lfd,
		addr:  addr,
		conns: slab.New[conn](cfg.maxConns),
		buf:   make([]byte, readBufSize),
		log:   cfg.logger,
	}, nil
}

// serve runs the loop until stop, then closes every connection and the
// listener.
func (s *server) serve() error {
	err := s.loop.Run(s)
	for key := range s.conns.All() {
		s.closeConn(key, s.conns.Ptr(key))
	}
	s.EndBatch()
	closeFD(s.lfd)
	return err
}

// stop asks the loop to return; safe from any goroutine.
func (s *server) stop() { s.loop.Stop() }

// Event implements eventloop.Handler.
func (s *server) Event(t eventloop.Token, r eventloop.Ready) {
	if t == listenerToken {
		s.accept()
		return
	}
	c := s.conns.Ptr(int(t))
	if c == nil || c.closed {
		return // an event queued before the conn closed in this batch
	}
	c.ready.Update(r)
	s.drive(int(t), c)
}

// drive moves bytes until the socket would block. Echoed bytes are
// written straight from the shared read buffer; only what the client
// cannot take yet is copied aside, and then reading stops until it has
// gone (backpressure: a client that does not read cannot make the
// server buffer more than one read's worth).
func (s *server) drive(key int, c *conn) {
	for {
		if len(c.pending) > 0 {
			if !c.ready.Writable() {
				return
			}
			n, res := c.sock.Write(c.pending)
			c.pending = c.pending[n:]
			s.stats.bytes += int64(n)
			c.ready.Wrote(res)
			switch res {
			case protocol.WouldBlock:
				return
			case protocol.Closed, protocol.Error:
				s.closeConn(key, c)
				return
			}
			s.giveBack(c)
		}
		if c.eof {
			s.closeConn(key, c)
			return
		}
		if !c.ready.Readable() {
			return
		}
		n, res := c.sock.Read(s.buf)
		c.ready.Read(n, res)
		if n > 0 {
			c.seen = s.loop.Now()
			w, wres := c.sock.Write(s.buf[:n])
			s.stats.bytes += int64(w)
			if wres == protocol.Closed || wres == protocol.Error {
				s.closeConn(key, c)
				return
			}
			if w < n {
				c.ready.Wrote(protocol.WouldBlock)
				s.borrow(c)
				c.pending = append(c.borrowed[:0], s.buf[w:n]...)
			}
		}
		switch res {
		case protocol.Closed:
			c.eof = true
		case protocol.Error:
			s.closeConn(key, c)
			return
		}
	}
}

func (s *server) borrow(c *conn) {
	if n := len(s.spare); n > 0 {
		c.borrowed = s.spare[n-1]
		s.spare = s.spare[:n-1]
		return
	}
	c.borrowed = make([]byte, 0, readBufSize)
}

func (s *server) giveBack(c *conn) {
	if c.borrowed == nil {
		return
	}
	// Keep a few buffers for the next burst; let the rest go so that
	// memory follows the load down again.
	if len(s.spare) < 64 {
		s.spare = append(s.spare, c.borrowed[:0])
	}
	c.borrowed, c.pending = nil, nil
}

func (s *server) accept() {
	for {
		fd, _, err := protocol.Accept(s.lfd)
		if errors.Is(err, protocol.ErrWouldBlock) {
			return
		}
		if err != nil {
			// Out of descriptors, most likely: the backlog keeps what
			// waits, and no new edge comes for it, so try again soon.
			s.log.Warn("accept failed, retrying in 100ms", "err", err)
			s.loop.Timers().Schedule(eventloop.TimerKey{Token: retryToken}, 100*time.Millisecond)
			return
		}
		protocol.SetNoDelay(fd, true)
		v, err := s.conns.Vacant()
		if err != nil {
			s.stats.refused++
			closeFD(fd)
			continue
		}
		t := eventloop.Token(v.Key())
		if err := s.loop.Poller().Register(fd, t, eventloop.InterestBoth); err != nil {
			s.log.Warn("register failed", "err", err)
			v.Release()
			closeFD(fd)
			continue
		}
		v.Insert(conn{
			sock: protocol.NewTCPSocket(fd),
			idle: s.loop.Timers().Schedule(eventloop.TimerKey{Token: t}, s.cfg.idleTimeout),
			seen: s.loop.Now(),
		})
		s.stats.accepted++
	}
}

// Timeout implements eventloop.Handler: an idle client is closed.
func (s *server) Timeout(t eventloop.Token, _ eventloop.TimerName) {
	if t == retryToken {
		s.accept()
		return
	}
	if c := s.conns.Ptr(int(t)); c != nil && !c.closed {
		// The timer is not reset per read (a wheel update and a clock
		// read per message); it fires at its first deadline and is
		// pushed back by the time since the client last spoke.
		if left := s.cfg.idleTimeout - s.loop.Now().Sub(c.seen); left > 0 {
			c.idle = s.loop.Timers().Schedule(eventloop.TimerKey{Token: t}, left)
			return
		}
		s.stats.timedOut++
		s.closeConn(int(t), c)
	}
}

// Panic implements eventloop.Handler: the conn whose event panicked is
// closed, the others go on.
func (s *server) Panic(t eventloop.Token, v any, stack []byte) {
	s.stats.panics++
	s.log.Error("panic in echo handler", "token", t, "panic", v, "stack", string(stack))
	if c := s.conns.Ptr(int(t)); c != nil && !c.closed {
		s.closeConn(int(t), c)
	}
}

// closeConn releases everything a conn holds at once, except its slab
// key: that is freed at the end of the batch, so that an event still
// queued for this token cannot reach a new conn that reused it.
func (s *server) closeConn(key int, c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	s.loop.Poller().Deregister(c.sock.Fd())
	c.sock.Close()
	s.loop.Timers().Cancel(c.idle)
	s.giveBack(c)
	s.doomed = append(s.doomed, key)
	s.stats.closed++
}

// EndBatch implements eventloop.BatchEnder.
func (s *server) EndBatch() {
	for _, key := range s.doomed {
		s.conns.Remove(key)
	}
	s.doomed = s.doomed[:0]
}

func (s *server) String() string {
	return fmt.Sprintf("accepted=%d closed=%d timed_out=%d refused=%d panics=%d bytes=%d",
		s.stats.accepted, s.stats.closed, s.stats.timedOut, s.stats.refused, s.stats.panics, s.stats.bytes)
}

var _ eventloop.BatchEnder = (*server)(nil)

func closeFD(fd int) {
	sock := protocol.NewTCPSocket(fd)
	sock.Close()
}
