package tlsconn

import (
	"crypto/tls"
	"errors"
	"io"
	"time"

	"github.com/sluiceproxy/sluice/protocol"
)

// chunk is the most plaintext one Write encrypts before the ciphertext
// is flushed: two full records, so that the ciphertext a slow client
// leaves behind (copied out of the loop's scratch) stays bounded.
const chunk = 32 << 10

// Scratch is the loop's shared room for ciphertext: what a Read takes
// from the kernel and what a Write hands to it pass through here, so that
// an idle TLS connection holds no buffer of its own. One per loop; a
// Socket uses it only inside its own calls.
type Scratch struct {
	in    []byte
	out   []byte
	plain []byte // Writev gathers small buffers here into one record
}

// NewScratch returns a scratch for one loop.
func NewScratch() *Scratch {
	// A full record is 16 KiB of plaintext plus at most 256 bytes of
	// expansion and the 5-byte header (RFC 8446 section 5.2); the output
	// holds two records for a chunk.
	return &Scratch{in: make([]byte, 16<<10+512), out: make([]byte, 0, chunk+1024), plain: make([]byte, 0, 16<<10)}
}

// Socket is the server side of a TLS connection on an event loop: a
// [protocol.Socket] that reads and writes plaintext, over a non-blocking
// TCP socket. It also implements [protocol.Flusher]: a Write may leave
// ciphertext the kernel did not take, which Flush sends on the next
// writable edge.
//
// Drive the handshake with [Socket.Handshake] on every event until it
// answers Established; Read, Write and the rest are for after that.
type Socket struct {
	tcp     protocol.TCPSocket
	conn    *Conn
	scratch *Scratch
	// shutPending: CloseWrite queued close_notify behind unflushed
	// ciphertext; the FIN follows once it is flushed.
	shutPending bool
	failed      protocol.SocketResult // a flush failed: Closed or Error, sticky
	started     time.Time
}

// NewSocket wraps an accepted TCP descriptor. notify is as for [New].
func NewSocket(fd int, cfg *tls.Config, scratch *Scratch, notify func()) *Socket {
	return &Socket{tcp: protocol.NewTCPSocket(fd), conn: New(cfg, notify), scratch: scratch}
}

// Conn is the TLS connection (state, ConnectionState through Conn().TLS()).
func (s *Socket) Conn() *Conn { return s.conn }

// Fd implements protocol.Socket.
func (s *Socket) Fd() int { return s.tcp.Fd() }

// Handshake moves the handshake on with what r says the socket can do:
// it flushes the server's flights, reads the client's, and admits the
// handshake to pool once the ClientHello is in. It returns the state;
// Failed means close the connection (an alert may have been sent).
// timeout bounds the handshake from its admission.
func (s *Socket) Handshake(pool *Pool, timeout time.Duration, r *protocol.Readiness) State {
	c := s.conn
	for {
		if c.state == Established || c.state == Failed {
			return c.state
		}
		progress := false
		if out := c.Output(); len(out) > 0 && r.Writable() {
			n, res := s.tcp.Write(out)
			c.Consume(n)
			r.Wrote(res)
			if res == protocol.Closed || res == protocol.Error {
				c.Abort()
				c.state, c.err = Failed, ErrPeerGone
				return c.state
			}
			progress = n > 0
		}
		if r.Readable() {
			n, res := s.tcp.Read(s.scratch.in)
			r.Read(n, res)
			if n > 0 {
				if s.started.IsZero() {
					s.started = time.Now()
				}
				c.Feed(s.scratch.in[:n])
				progress = true
			}
			if res == protocol.Closed && c.state == Handshaking {
				// A client may finish its handshake and close at once:
				// let the handshake read what came before the FIN.
				c.feedEOF()
			} else if res == protocol.Closed || res == protocol.Error {
				c.Abort()
				c.state, c.err = Failed, ErrPeerGone
				return c.state
			}
		}
		before := c.state
		st := c.Poll(pool, timeout)
		if st == Established {
			// What the handshake left unflushed goes out with the next
			// flush; the bytes the client sent after its Finished stay in
			// the connection for the first Read.
			if len(c.Output()) > 0 {
				r.SetWritable() // let Flush try; it clears it on EAGAIN
			}
			// The handshake may have read application data past the
			// client's Finished: no edge will announce it again.
			r.SetReadable()
			return st
		}
		if st == Failed {
			// Best effort: the alert crypto/tls wrote, if the kernel takes it.
			if out := c.Output(); len(out) > 0 {
				s.tcp.Write(out)
			}
			return st
		}
		if !progress && st == before {
			return st
		}
	}
}

// Started is when the handshake's first bytes were read (zero before).
func (s *Socket) Started() time.Time { return s.started }

// ErrPeerGone is why a handshake failed when the client closed or reset
// the connection before its end.
var ErrPeerGone = errors.New("tlsconn: the client closed during the handshake")

// Read implements protocol.Socket: it decrypts into p what the kernel
// holds. Like [protocol.TCPSocket.Read] it answers WouldBlock only when
// the kernel said so (a short read or EAGAIN), Continue when p is full
// (more may be buffered here or in the kernel), Closed after the peer's
// close_notify or a clean TCP EOF, and Error otherwise.
func (s *Socket) Read(p []byte) (int, protocol.SocketResult) {
	if len(p) == 0 {
		return 0, protocol.Continue
	}
	mc := s.conn.mc
	total := 0
	drained := false // the kernel's queue was found empty in this call
	atShort := -1    // total when the kernel last gave a short read
	for total < len(p) {
		n, err := s.conn.tc.Read(p[total:])
		total += n
		if err == nil {
			continue
		}
		if !errors.Is(err, errWouldBlock) {
			s.keep()
			if errors.Is(err, io.EOF) {
				return total, protocol.Closed
			}
			return total, protocol.Error
		}
		// crypto/tls wants more ciphertext; memConn is empty. A short
		// read proves the kernel's queue empty, as for a TCPSocket, once
		// its bytes yielded plaintext: the caller's Readiness then keeps
		// reading if a FIN came (its event's ReadClosed bit). Bytes that
		// yielded none (a partial record, a post-handshake message) do
		// not: a FIN may be queued behind them and reporting WouldBlock
		// with nothing read would wait for an edge that will not come,
		// so the kernel is asked once more.
		if drained || atShort >= 0 && total > atShort {
			break
		}
		m, res := s.tcp.Read(s.scratch.in)
		if m > 0 {
			mc.lock()
			mc.in, mc.inLent = s.scratch.in[:m:m], true // lent until the end of this call
			mc.unlock()
		}
		switch res {
		case protocol.WouldBlock:
			if m == 0 {
				drained = true
			} else {
				atShort = total
			}
		case protocol.Closed:
			mc.lock()
			mc.eof = true
			mc.unlock()
		case protocol.Error:
			s.keep()
			return total, protocol.Error
		}
	}
	s.keep()
	if total == len(p) {
		return total, protocol.Continue
	}
	return total, protocol.WouldBlock
}

// keep copies ciphertext crypto/tls has not taken yet out of the shared
// scratch, which the next socket's Read will overwrite.
func (s *Socket) keep() {
	mc := s.conn.mc
	mc.lock()
	if mc.inLent {
		mc.inLent = false
		if len(mc.in) > 0 {
			mc.in = append([]byte(nil), mc.in...)
		}
	}
	mc.unlock()
}

// Write implements protocol.Socket. It encrypts p a chunk at a time and
// writes the records. It returns WouldBlock when the kernel refused part
// of them: the count then includes the whole chunk being written, whose
// remaining ciphertext waits here for [Socket.Flush] (so Pending is true
// and the caller must flush on the next writable edge before its Write
// can take more).
func (s *Socket) Write(p []byte) (int, protocol.SocketResult) {
	if s.failed != 0 {
		return 0, s.failed
	}
	if s.Pending() {
		if r := s.Flush(); r != protocol.Continue {
			return 0, r
		}
	}
	total := 0
	for total < len(p) {
		n := min(len(p)-total, chunk)
		if r := s.encrypt(p[total : total+n]); r != protocol.Continue {
			return total, r
		}
		total += n
		if r := s.Flush(); r != protocol.Continue {
			return total, r
		}
	}
	return total, protocol.Continue
}

// Writev implements protocol.Socket: the buffers are encrypted one after
// the other into the same flush, so a response head and body leave in
// one system call.
func (s *Socket) Writev(bufs [][]byte) (int, protocol.SocketResult) {
	if s.failed != 0 {
		return 0, s.failed
	}
	if s.Pending() {
		if r := s.Flush(); r != protocol.Continue {
			return 0, r
		}
	}
	// A response head and a small body become one record, not one each:
	// half the records for the client to open.
	if len(bufs) > 1 {
		n := 0
		for _, b := range bufs {
			n += len(b)
		}
		if n <= cap(s.scratch.plain) {
			p := s.scratch.plain[:0]
			for _, b := range bufs {
				p = append(p, b...)
			}
			if r := s.encrypt(p); r != protocol.Continue {
				return 0, r
			}
			if r := s.Flush(); r != protocol.Continue {
				return n, r
			}
			return n, protocol.Continue
		}
	}
	total, queued := 0, 0
	for _, b := range bufs {
		for len(b) > 0 {
			n := min(len(b), chunk-queued)
			if r := s.encrypt(b[:n]); r != protocol.Continue {
				return total, r
			}
			b = b[n:]
			total += n
			queued += n
			if queued == chunk {
				if r := s.Flush(); r != protocol.Continue {
					return total, r
				}
				queued = 0
			}
		}
	}
	if queued > 0 {
		if r := s.Flush(); r != protocol.Continue {
			return total, r
		}
	}
	return total, protocol.Continue
}

// encrypt hands p to crypto/tls, whose records land in the output: the
// shared scratch when nothing is pending.
func (s *Socket) encrypt(p []byte) protocol.SocketResult {
	mc := s.conn.mc
	mc.lock()
	if len(mc.out) == 0 {
		mc.out, mc.outLent = s.scratch.out[:0], true
	}
	mc.unlock()
	if _, err := s.conn.tc.Write(p); err != nil {
		s.failed = protocol.Error
		return protocol.Error
	}
	return protocol.Continue
}

// Pending reports whether ciphertext waits for the kernel
// (protocol.Flusher).
func (s *Socket) Pending() bool {
	mc := s.conn.mc
	mc.lock()
	defer mc.unlock()
	return len(mc.out) > 0 || s.shutPending
}

// Flush writes the pending ciphertext (protocol.Flusher): Continue when
// none is left, WouldBlock when the kernel is full, Closed or Error when
// the client is gone.
func (s *Socket) Flush() protocol.SocketResult {
	if s.failed != 0 {
		return s.failed
	}
	mc := s.conn.mc
	mc.lock()
	defer mc.unlock()
	if len(mc.out) > 0 {
		n, r := s.tcp.Write(mc.out)
		rest := mc.out[n:]
		switch r {
		case protocol.Continue:
			mc.out, mc.outLent = nil, false
		case protocol.WouldBlock:
			if mc.outLent {
				// Keep the rest in memory of its own: the scratch serves
				// the next socket.
				mc.out, mc.outLent = append([]byte(nil), rest...), false
			} else {
				mc.out = rest
			}
			return r
		default:
			s.failed = r
			mc.out, mc.outLent = nil, false
			return r
		}
	}
	if s.shutPending {
		s.shutPending = false
		s.tcp.CloseWrite()
	}
	return protocol.Continue
}

// CloseWrite implements protocol.Socket: close_notify, then FIN once it
// is flushed.
func (s *Socket) CloseWrite() error {
	mc := s.conn.mc
	mc.lock()
	if len(mc.out) == 0 {
		mc.out, mc.outLent = s.scratch.out[:0], true
	}
	mc.unlock()
	err := s.conn.tc.CloseWrite()
	s.shutPending = true
	s.Flush()
	return err
}

// Close implements protocol.Socket: it ends a handshake in progress and
// closes the descriptor; pending ciphertext is dropped.
func (s *Socket) Close() error {
	s.conn.Abort()
	mc := s.conn.mc
	mc.lock()
	mc.out, mc.in, mc.outLent, mc.inLent = nil, nil, false, false
	mc.unlock()
	return s.tcp.Close()
}

var (
	_ protocol.Socket  = (*Socket)(nil)
	_ protocol.Flusher = (*Socket)(nil)
)
