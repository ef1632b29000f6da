// Package tlsconn terminates TLS for a session on an event loop with the
// standard crypto/tls, unmodified. See LIFECYCLE.md.
//
// crypto/tls reads and writes a net.Conn and cannot resume a handshake
// after a "would block". So the handshake runs on a goroutine from a
// bounded [Pool], reading from an in-memory connection that the loop
// feeds with the bytes it reads from the socket, and writing into a
// buffer the loop flushes. A handshake is admitted to the pool only once
// the client's whole ClientHello is buffered, so a client that connects
// and sends nothing, or trickles, costs no goroutine. Once the handshake
// is done, reads and writes happen on the loop: the in-memory connection
// then answers an empty read with a temporary error, which tls.Conn.Read
// survives (its errors are sticky otherwise), and writes always succeed
// into the output buffer.
package tlsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrPoolFull is returned when a handshake cannot be queued: every
// worker is busy and the queue is full.
var ErrPoolFull = errors.New("tlsconn: handshake pool full")

// ErrNotClientHello is returned when the first bytes of a connection are
// not a TLS handshake record carrying a ClientHello.
var ErrNotClientHello = errors.New("tlsconn: not a TLS ClientHello")

// maxClientHello bounds the ClientHello the loop buffers before a
// handshake is admitted (a large post-quantum key share is about 2 KiB).
const maxClientHello = 16 << 10

// Pool runs handshakes on a bounded number of goroutines, with a bounded
// queue in front. It is safe for concurrent use by every worker.
type Pool struct {
	jobs    chan func()
	mu      sync.Mutex
	workers int
	max     int
	closed  bool
	wg      sync.WaitGroup
}

// NewPool returns a pool of at most workers goroutines (started on
// demand) and a queue of queue handshakes waiting for one.
func NewPool(workers, queue int) *Pool {
	if workers <= 0 {
		workers = 64
	}
	if queue < 0 {
		queue = 0
	}
	return &Pool{jobs: make(chan func(), queue), max: workers}
}

// submit queues f, starting a worker if the limit allows. It reports
// false when the pool is full or closed.
func (p *Pool) submit(f func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.workers < p.max {
		p.workers++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.work(f)
		return true
	}
	p.mu.Unlock()
	select {
	case p.jobs <- f:
		return true
	default:
		return false
	}
}

// work runs f, then queued jobs, and exits when the queue is empty, so
// an idle pool holds no goroutine.
func (p *Pool) work(f func()) {
	defer p.wg.Done()
	for {
		f()
		select {
		case f = <-p.jobs:
		default:
			p.mu.Lock()
			// Re-check under the lock: a job queued between the select and
			// here would otherwise wait for the next handshake to start a
			// worker.
			select {
			case f = <-p.jobs:
				p.mu.Unlock()
				continue
			default:
			}
			p.workers--
			p.mu.Unlock()
			return
		}
	}
}

// Workers is the number of goroutines running now.
func (p *Pool) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// Close refuses new handshakes and waits for the running ones (each ends
// at its own deadline at the latest).
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// State is where a Conn is.
type State uint8

const (
	// Hello: buffering the ClientHello on the loop; no goroutine.
	Hello State = iota
	// Handshaking: a pool goroutine runs the handshake.
	Handshaking
	// Established: reads and writes happen on the loop.
	Established
	// Failed: the handshake failed or timed out; close the connection.
	Failed
)

// Conn is the server side of one TLS connection driven by a loop. The
// loop feeds it the bytes it reads from the socket (Feed) and writes out
// what it produces (Output, Consume). Until Established, only Feed,
// Output, Consume, State and Err may be called; after it, Read and Write
// too.
type Conn struct {
	mc     *memConn
	tc     *tls.Conn
	state  State
	err    error
	notify func()
	done   chan struct{}
}

// New prepares a TLS server connection. notify is called from the
// handshake goroutine whenever the loop must look at the Conn again
// (output to flush, the handshake's end); it must be safe from any
// goroutine, typically a post to the worker's loop.
func New(cfg *tls.Config, notify func()) *Conn {
	mc := &memConn{notify: notify}
	mc.cond = sync.NewCond(&mc.mu)
	return &Conn{mc: mc, tc: tls.Server(mc, cfg), notify: notify}
}

// State is the connection's state. After a notify, Poll moves it on.
func (c *Conn) State() State { return c.state }

// Err is why the handshake failed.
func (c *Conn) Err() error { return c.err }

// TLS is the crypto/tls connection, for ConnectionState (ALPN, SNI).
func (c *Conn) TLS() *tls.Conn { return c.tc }

// Feed hands the loop's freshly read ciphertext to the connection.
func (c *Conn) Feed(p []byte) {
	c.mc.lock()
	c.mc.in = append(c.mc.in, p...)
	c.mc.unpark()
	c.mc.unlock()
	c.mc.cond.Signal()
}

// feedEOF tells the handshake the client's stream ended after what was
// fed.
func (c *Conn) feedEOF() {
	c.mc.lock()
	c.mc.eof = true
	c.mc.unpark()
	c.mc.unlock()
	c.mc.cond.Broadcast()
}

// Output is the ciphertext waiting to be written to the socket; after
// writing n bytes of it, call Consume(n). The slice is valid until the
// next call on the Conn.
func (c *Conn) Output() []byte {
	c.mc.lock()
	defer c.mc.unlock()
	return c.mc.out
}

// Consume drops n written bytes of Output.
func (c *Conn) Consume(n int) {
	c.mc.lock()
	c.mc.out = c.mc.out[:copy(c.mc.out, c.mc.out[n:])]
	c.mc.unlock()
}

// Poll moves the state machine on: in Hello it admits the handshake to
// pool once the ClientHello is complete; in Handshaking it notices the
// goroutine's end. timeout bounds the handshake from its admission.
func (c *Conn) Poll(pool *Pool, timeout time.Duration) State {
	switch c.state {
	case Hello:
		c.mc.lock()
		complete, err := clientHelloComplete(c.mc.in)
		c.mc.unlock()
		if err != nil {
			c.state, c.err = Failed, err
			return c.state
		}
		if !complete {
			return c.state
		}
		c.done = make(chan struct{})
		c.mc.blocking = true
		busy.Add(1) // from the submit: the goroutine may not have started
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c.mc.deadline = time.Now().Add(timeout)
		if !pool.submit(func() {
			defer cancel()
			err := c.tc.HandshakeContext(ctx)
			c.mc.lock()
			c.mc.blocking = false
			c.mc.hsErr = err
			c.mc.unlock()
			close(c.done)
			c.notify()
			busy.Add(-1)
		}) {
			busy.Add(-1)
			cancel()
			c.state, c.err = Failed, ErrPoolFull
			return c.state
		}
		c.state = Handshaking
	case Handshaking:
		select {
		case <-c.done:
			c.done = nil // 96 bytes an established connection would keep
			c.mc.lock()
			err := c.mc.hsErr
			c.mc.unlock()
			if err != nil {
				c.state, c.err = Failed, err
			} else {
				c.state = Established
				// The goroutine is gone (closing done ordered its last
				// access before this): from now on only the loop touches
				// the connection, without the lock.
				c.mc.loopOnly = true
			}
		default:
		}
	}
	return c.state
}

// Abort ends a handshake in progress or queued (the connection is
// closing): the goroutine's pending read fails at once, and a queued
// handshake fails as soon as it starts. It does not wait for the
// goroutine, which may still call notify once.
func (c *Conn) Abort() {
	c.mc.Close()
}

// Read decrypts into p what the fed ciphertext holds. It returns 0 and
// no error when a whole record is not there yet (the loop feeds more on
// the next readable edge), and io.EOF after the peer's close_notify.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.tc.Read(p)
	if errors.Is(err, errWouldBlock) {
		return n, nil
	}
	return n, err
}

// Write encrypts p into the output buffer; it always takes all of p. The
// caller bounds what it writes by how much Output it has not flushed.
func (c *Conn) Write(p []byte) (int, error) { return c.tc.Write(p) }

// CloseWrite queues a close_notify alert.
func (c *Conn) CloseWrite() error { return c.tc.CloseWrite() }

// clientHelloComplete reports whether b starts with a whole ClientHello:
// one or more handshake records (RFC 8446 section 5.1: type 22, 2-byte
// version, 2-byte length) whose payloads hold a handshake message of type
// 1 and its declared length (section 4: type, 3-byte length).
func clientHelloComplete(b []byte) (bool, error) {
	var msg []byte
	var buf [maxClientHello + 4]byte
	for len(b) > 0 {
		if b[0] != 22 {
			return false, ErrNotClientHello
		}
		if len(b) < 5 {
			return false, nil
		}
		if b[1] != 3 {
			return false, ErrNotClientHello
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > 16384+256 {
			return false, ErrNotClientHello
		}
		if len(b) < 5+n {
			if len(msg)+len(b)-5 > len(buf) {
				return false, ErrNotClientHello
			}
			msg = append(buf[:len(msg)], b[5:]...)
			break
		}
		if len(msg)+n > len(buf) {
			return false, ErrNotClientHello
		}
		msg = append(buf[:len(msg)], b[5:5+n]...)
		b = b[5+n:]
		if len(msg) >= 4 {
			if msg[0] != 1 {
				return false, ErrNotClientHello
			}
			need := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need > maxClientHello {
				return false, ErrNotClientHello
			}
			if len(msg) >= need {
				return true, nil
			}
		}
	}
	if len(msg) >= 1 && msg[0] != 1 {
		return false, ErrNotClientHello
	}
	return false, nil
}

// errWouldBlock is what memConn.Read answers on the loop when no byte is
// buffered. It is temporary, which tls.Conn.Read does not make sticky.
var errWouldBlock = &wouldBlock{}

type wouldBlock struct{}

func (*wouldBlock) Error() string   { return "tlsconn: would block" }
func (*wouldBlock) Timeout() bool   { return false }
func (*wouldBlock) Temporary() bool { return true }

var _ net.Error = errWouldBlock

// memConn is the net.Conn crypto/tls sees.
type memConn struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in, out  []byte
	blocking bool // handshake: Read waits for Feed
	closed   bool
	eof      bool // the client's TCP stream ended: Read answers io.EOF once in is empty
	// in and out may be lent by the loop's Scratch during one Socket
	// call (established connections only); the Socket copies what is
	// left before the call returns.
	inLent, outLent bool
	loopOnly        bool // the handshake is over: only the loop touches it, lock-free

	deadline time.Time
	hsErr    error
	notify   func()
	parked   bool // a handshake goroutine waits in Read (see busy)
}

// lock takes the mutex while a handshake goroutine may touch the
// connection; after the handshake the loop alone does, and a lock per
// read and write would be pure cost.
func (m *memConn) lock() {
	if !m.loopOnly {
		m.mu.Lock()
	}
}

func (m *memConn) unlock() {
	if !m.loopOnly {
		m.mu.Unlock()
	}
}

func (m *memConn) Read(p []byte) (int, error) {
	m.lock()
	defer m.unlock()
	for len(m.in) == 0 {
		if m.closed {
			return 0, net.ErrClosed
		}
		if m.eof {
			return 0, io.EOF
		}
		if !m.blocking {
			return 0, errWouldBlock
		}
		if !m.deadline.IsZero() && !time.Now().Before(m.deadline) {
			return 0, context.DeadlineExceeded
		}
		m.waitUntilDeadline()
	}
	n := copy(p, m.in)
	// Slide forward rather than shift: crypto/tls reads a record in
	// pieces, and shifting would copy the rest each time.
	if m.in = m.in[n:]; len(m.in) == 0 {
		m.in, m.inLent = nil, false
	}
	return n, nil
}

// waitUntilDeadline waits for a Feed, a close, or the deadline; the
// timer wakes the condition variable when the deadline passes.
func (m *memConn) waitUntilDeadline() {
	m.park()
	defer m.unpark()
	if m.deadline.IsZero() {
		m.cond.Wait()
		return
	}
	t := time.AfterFunc(time.Until(m.deadline), func() {
		m.mu.Lock() // the waiter holds it until Wait releases it: no lost wake-up
		m.mu.Unlock()
		m.cond.Broadcast()
	})
	m.cond.Wait()
	t.Stop()
}

// busy counts the handshakes running on a pool goroutine and not parked
// waiting for the loop's bytes, for a simulation (package session/sim)
// that must let them settle before its world moves on. A parked
// goroutine is counted again by whoever wakes it, before it runs, so
// that the count never reads 0 while a woken one has yet to run.
var busy atomic.Int64

// Busy is the number of handshakes at work right now (not waiting for
// the client's bytes). A deterministic simulation waits for 0 before it
// moves its world on.
func Busy() int64 { return busy.Load() }

// park and unpark, under mu, account for a handshake goroutine that
// waits; a Feed or Close that wakes it unparks it first.
func (m *memConn) park() {
	m.parked = true
	busy.Add(-1)
}

func (m *memConn) unpark() {
	if m.parked {
		m.parked = false
		busy.Add(1)
	}
}

func (m *memConn) Write(p []byte) (int, error) {
	m.lock()
	if m.closed {
		m.unlock()
		return 0, net.ErrClosed
	}
	m.out = append(m.out, p...)
	handshaking := m.blocking
	m.unlock()
	if handshaking {
		m.notify() // output of a handshake flight for the loop to flush
	}
	return len(p), nil
}

func (m *memConn) Close() error {
	m.lock()
	m.closed = true
	m.unpark()
	m.unlock()
	m.cond.Broadcast()
	return nil
}

func (m *memConn) LocalAddr() net.Addr                { return dummyAddr{} }
func (m *memConn) RemoteAddr() net.Addr               { return dummyAddr{} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "loop" }
