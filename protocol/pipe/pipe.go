// Package pipe relays bytes both ways between two non-blocking sockets:
// the state machine under the TCP proxy session, and the one an HTTP
// session turns into after an Upgrade. See LIFECYCLE.md.
package pipe

import (
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
)

// Side names an end of the pipe.
type Side uint8

const (
	Front Side = iota // the client
	Back              // the backend
)

// String names the side.
func (s Side) String() string {
	if s == Front {
		return "front"
	}
	return "back"
}

// Status is what [Pipe.Ready] reports.
type Status uint8

const (
	// Open: waiting for events; nothing to do until the next one.
	Open Status = iota
	// Done: both directions ended cleanly (each side's FIN was relayed
	// and everything before it delivered). The session closes.
	Done
	// Failed: a socket reset or failed. The session closes; bytes still
	// buffered are lost, as they would be in the kernel.
	Failed
	// NeedBuffer: a side is readable but the pool is exhausted. Nothing
	// will raise an edge for it: the session must call Ready again
	// later (a short timer) or close.
	NeedBuffer
)

var statusNames = [...]string{"open", "done", "failed", "need-buffer"}

// String names the status.
func (s Status) String() string { return statusNames[s] }

// end is one socket and the bytes read from it that wait to be written
// to the other.
type end struct {
	sock  protocol.Socket
	flush protocol.Flusher // sock, when its Write may leave bytes to flush (TLS)
	ready protocol.Readiness
	in    *protocol.Buffer     // read from this end, bound for the other; nil when empty
	kp    *protocol.KernelPipe // spliced from this end, bound for the other; nil when empty
	fd    int                  // the descriptor to splice, or -1 (not a plain TCP socket)
	bulk  bool                 // a read filled a whole buffer: bytes from this end come by the pipeful
	eof   bool                 // this end sent FIN (read returned EOF)
	shut  bool                 // we sent FIN to this end
	read  uint64               // bytes read from this end
	wrote uint64               // bytes written to this end
}

// Pipe relays between a front and a back socket with backpressure (a
// side is read only while its buffer has room, that is while the other
// side takes the bytes), half-close in each direction (a FIN is relayed
// once everything before it is written; the other direction keeps
// flowing), and buffers borrowed from a pool only while bytes are in
// flight. It belongs to one loop.
type Pipe struct {
	pool  *protocol.Pool
	pipes *protocol.PipePool // kernel pipes for splicing; nil: buffers only
	ends  [2]end
	moved [2]bool // bytes moved on each side during the last Ready
}

// New returns a pipe between front and back. Both sockets are owned by
// the caller (the session closes them).
func New(pool *protocol.Pool, front, back protocol.Socket) *Pipe {
	p := &Pipe{}
	p.Init(pool, front, back)
	return p
}

// Init sets up a pipe in place, for a session that embeds it by value.
func (p *Pipe) Init(pool *protocol.Pool, front, back protocol.Socket) {
	*p = Pipe{pool: pool}
	p.ends[Front].setSock(front)
	p.ends[Back].setSock(back)
}

func (e *end) setSock(s protocol.Socket) {
	e.sock = s
	e.flush, _ = s.(protocol.Flusher)
	e.fd = -1
	if t, ok := s.(interface{ SpliceFd() int }); ok {
		e.fd = t.SpliceFd()
	}
}

// Splice lets the pipe move bulk transfers through kernel pipes from pp
// with splice(2) when both sockets are plain TCP (Linux): a direction
// whose read fills a whole buffer switches to the kernel pipe, which
// moves up to its size per system call and never copies to user space;
// small exchanges stay on the buffer path, which costs one read and one
// write as a splice does. A nil or empty pool leaves the pipe on buffers.
func (p *Pipe) Splice(pp *protocol.PipePool) {
	if pp.Enabled() {
		p.pipes = pp
	}
}

// spliceable reports whether src→dst may go through a kernel pipe.
func (p *Pipe) spliceable(src, dst *end) bool {
	return p.pipes != nil && src.fd >= 0 && dst.fd >= 0
}

// spliced reports whether bytes from e wait in its kernel pipe.
func (e *end) spliced() bool { return e.kp != nil && e.kp.Len() > 0 }

// written records a write of n bytes to e that answered r. stop is true
// when the direction cannot go on: the socket would block (Open: wait for
// its writable edge) or failed (Failed).
func (e *end) written(n int, r protocol.SocketResult) (st Status, stop bool) {
	e.wrote += uint64(n)
	e.ready.Wrote(r)
	switch r {
	case protocol.WouldBlock:
		return Open, true
	case protocol.Closed, protocol.Error:
		return Failed, true
	}
	return Open, false
}

// pending reports whether bytes the socket accepted wait for the kernel.
func (e *end) pending() bool { return e.flush != nil && e.flush.Pending() }

// SetBack replaces the back socket (a connect retry on a new backend).
// Only valid before any byte went to the back.
func (p *Pipe) SetBack(back protocol.Socket) {
	p.ends[Back].setSock(back)
	p.ends[Back].ready.Reset()
}

// UpdateReadiness records an event for one side.
func (p *Pipe) UpdateReadiness(s Side, r eventloop.Ready) { p.ends[s].ready.Update(r) }

// MergeReadiness hands the pipe what a side's previous owner recorded:
// edges already consumed will not come again.
func (p *Pipe) MergeReadiness(s Side, r protocol.Readiness) { p.ends[s].ready.Merge(r) }

// Ready moves bytes both ways until nothing more can move without a new
// event, and says what the session should do.
func (p *Pipe) Ready() Status {
	front, back := &p.ends[Front], &p.ends[Back]
	fr, fw, br, bw := front.read, front.wrote, back.read, back.wrote
	st := p.run(front, back)
	p.moved[Front] = front.read != fr || front.wrote != fw
	p.moved[Back] = back.read != br || back.wrote != bw
	return st
}

// run relays both ways until nothing moves.
func (p *Pipe) run(front, back *end) Status {
	for {
		a, sa := p.relay(front, back)
		if sa == Failed {
			return Failed
		}
		b, sb := p.relay(back, front)
		if sb == Failed {
			return Failed
		}
		if a || b {
			continue
		}
		if p.finished(front, back) && p.finished(back, front) {
			return Done
		}
		if sa == NeedBuffer || sb == NeedBuffer {
			return NeedBuffer
		}
		return Open
	}
}

// finished reports whether the src→dst direction has ended: src sent
// FIN, everything was written, and the FIN was passed on.
func (p *Pipe) finished(src, dst *end) bool {
	return src.eof && src.in == nil && !src.spliced() && dst.shut && !dst.pending()
}

// relay moves src→dst until it would block. It reports whether anything
// changed.
func (p *Pipe) relay(src, dst *end) (progress bool, st Status) {
	if dst.pending() {
		// Bytes dst's socket accepted earlier go first; no new Write
		// would flush them if src has nothing more.
		if !dst.ready.Writable() {
			return false, Open
		}
		if st, stop := dst.written(0, dst.flush.Flush()); stop {
			return false, st
		}
		progress = true
	}
	for {
		if src.in != nil && !src.in.Empty() {
			if !dst.ready.Writable() {
				return progress, Open
			}
			n, r := dst.sock.Write(src.in.Bytes())
			src.in.Consume(n)
			progress = progress || n > 0
			if st, stop := dst.written(n, r); stop {
				return progress, st
			}
		}
		if src.in != nil && src.in.Empty() {
			p.pool.Put(src.in)
			src.in = nil
		}
		if src.in == nil && (src.kp != nil || src.bulk && src.ready.Readable() && !src.eof) {
			if moved, st, ok := p.splice(src, dst); ok {
				return progress || moved, st
			}
		}
		if src.eof {
			if !dst.shut {
				dst.shut = true
				progress = true
				// A failed shutdown means the peer is gone: the next
				// operation on it reports that.
				dst.sock.CloseWrite()
			}
			return progress, Open
		}
		if !src.ready.Readable() {
			return progress, Open
		}
		if src.in == nil {
			if src.in = p.pool.Get(); src.in == nil {
				return progress, NeedBuffer
			}
		}
		space := src.in.Space()
		if len(space) == 0 {
			return progress, Open // full: dst must take bytes first
		}
		n, r := src.sock.Read(space)
		src.in.Fill(n)
		src.read += uint64(n)
		if n > 0 {
			progress = true
			if n == src.in.Cap() && p.spliceable(src, dst) {
				src.bulk = true // the kernel had a buffer's worth or more
			}
		}
		src.ready.Read(n, r)
		switch r {
		case protocol.WouldBlock:
			if n == 0 {
				if src.in.Empty() {
					p.pool.Put(src.in)
					src.in = nil
				}
				return progress, Open
			}
		case protocol.Closed:
			src.eof = true
			progress = true
		case protocol.Error:
			return progress, Failed
		}
	}
}

// Adopt hands the pipe bytes that were read from side s before the pipe
// started (what followed a PROXY header, a sniffed prefix, a header to
// send first): they go to the other side before anything read from s
// later. The pipe owns buf from then on; s must hold no buffer yet.
func (p *Pipe) Adopt(s Side, buf *protocol.Buffer) {
	e := &p.ends[s]
	if e.in != nil {
		panic("pipe: Adopt on a side that already holds a buffer")
	}
	if buf.Empty() {
		p.pool.Put(buf)
		return
	}
	e.read += uint64(buf.Len())
	e.in = buf
}

// Moved reports whether the last Ready read or wrote bytes on side s:
// what a session's inactivity timer for that side watches.
func (p *Pipe) Moved(s Side) bool { return p.moved[s] }

// Read is the number of bytes read from side s.
func (p *Pipe) Read(s Side) uint64 { return p.ends[s].read }

// Written is the number of bytes written to side s.
func (p *Pipe) Written(s Side) uint64 { return p.ends[s].wrote }

// BytesIn is what was read from the front (and so relayed or bound for
// the back).
func (p *Pipe) BytesIn() uint64 { return p.ends[Front].read }

// BytesOut is what was read from the back.
func (p *Pipe) BytesOut() uint64 { return p.ends[Back].read }

// Buffered reports whether a buffer is held (bytes in flight).
func (p *Pipe) Buffered() bool {
	for i := range p.ends {
		if e := &p.ends[i]; e.in != nil || e.kp != nil || e.pending() {
			return true
		}
	}
	return false
}

// Idle reports whether no byte is in flight, the state in which a soft
// stop may close the session.
func (p *Pipe) Idle() bool { return !p.Buffered() }

// Awaits reports whether the pipe is waiting on side s: bytes bound for
// s that it has not taken, or room to read what s may still send. A side
// the pipe does not read because its bytes wait for the other side
// (backpressure), and that has nothing to take, is not awaited: an
// inactivity timeout on it would blame it for the other side's pace.
func (p *Pipe) Awaits(s Side) bool {
	e, other := &p.ends[s], &p.ends[1-s]
	if other.in != nil && !other.in.Empty() || other.spliced() || e.pending() || other.eof && !e.shut {
		return true // bytes (or a FIN) bound for s
	}
	// The pipe reads s once what it read before went to the other side.
	return !e.eof && (e.in == nil || e.in.Empty()) && !e.spliced()
}

// EOF reports whether side s has sent its FIN.
func (p *Pipe) EOF(s Side) bool { return p.ends[s].eof }

// Release returns the buffers to the pool; call it when the session
// closes.
func (p *Pipe) Release() {
	for i := range p.ends {
		p.pool.Put(p.ends[i].in)
		p.ends[i].in = nil
		if p.ends[i].kp != nil {
			p.pipes.Put(p.ends[i].kp) // closed if bytes are left in it
			p.ends[i].kp = nil
		}
	}
}

// Token is a convenient token for a side when a test or a simple
// program registers the two sockets of one pipe on its own loop.
func (s Side) Token() eventloop.Token { return eventloop.Token(s) }

// splice moves src→dst through a kernel pipe until it would block. ok is
// false when no pipe could be had: the caller copies through a buffer
// instead. src's buffer is empty (bytes read before go first).
//
// The pipe is filled only when empty, so that EAGAIN from a fill means
// the socket is drained (on a pipe with bytes in it, it may mean the
// pipe ran out of slots, and clearing the readable bit on that would
// wait for an edge that never comes). It goes back to the pool when
// emptied and src has nothing more for now: an idle relay holds no pipe.
func (p *Pipe) splice(src, dst *end) (progress bool, st Status, ok bool) {
	for {
		if src.spliced() {
			if !dst.ready.Writable() {
				return progress, Open, true
			}
			n, r := src.kp.DrainTo(dst.fd)
			progress = progress || n > 0
			if st, stop := dst.written(n, r); stop {
				return progress, st, true
			}
		}
		if src.eof || !src.ready.Readable() {
			p.pipes.Put(src.kp)
			src.kp = nil
			return progress, Open, false // the caller relays the FIN or waits
		}
		if src.kp == nil {
			if src.kp = p.pipes.Get(); src.kp == nil {
				return progress, Open, false
			}
		}
		n, r := src.kp.FillFrom(src.fd)
		src.read += uint64(n)
		if n > 0 {
			progress = true
		}
		src.ready.Read(n, r)
		switch r {
		case protocol.Closed:
			src.eof = true
			progress = true
		case protocol.Error:
			return progress, Failed, true
		}
	}
}
