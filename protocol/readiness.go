package protocol

import "github.com/sluiceproxy/sluice/eventloop"

// Readiness is one socket's readiness as its owner must keep it under
// edge-triggered polling (see package eventloop): the bits events set,
// cleared only when an operation proves the condition gone.
//
// It also carries the one exception to the short-read shortcut of
// [TCPSocket.Read]: after a FIN, an error or TCP urgent data, a short read
// does not prove the socket drained and no further edge will announce
// what is left, so the socket stays readable until a read returns nothing
// (EAGAIN) or EOF. Every session and state machine keeps its sockets'
// readiness through this type, so that rule lives in one place.
type Readiness struct {
	ready eventloop.Ready
	drain bool
}

// Update records an event.
func (r *Readiness) Update(ev eventloop.Ready) {
	r.ready |= ev & (eventloop.Readable | eventloop.Writable)
	if ev&(eventloop.ReadClosed|eventloop.Error|eventloop.Priority) != 0 {
		r.drain = true
		r.ready |= eventloop.Readable
	}
	if ev&(eventloop.Error|eventloop.WriteClosed) != 0 {
		// Let the write discover the error rather than wait forever.
		r.ready |= eventloop.Writable
	}
}

// Merge adds what another Readiness recorded (a socket handed from one
// state machine to the next keeps the edges already consumed).
func (r *Readiness) Merge(o Readiness) {
	r.ready |= o.ready
	r.drain = r.drain || o.drain
}

// Readable reports whether a read may make progress.
func (r *Readiness) Readable() bool { return r.ready&eventloop.Readable != 0 }

// Writable reports whether a write may make progress.
func (r *Readiness) Writable() bool { return r.ready&eventloop.Writable != 0 }

// SetWritable marks the socket writable without an event: a pooled
// connection whose writable edge was consumed while it waited.
func (r *Readiness) SetWritable() { r.ready |= eventloop.Writable }

// SetReadable marks the socket readable without an event: bytes the
// kernel delivered earlier wait in a layer above it (a TLS connection
// that read past the end of its handshake).
func (r *Readiness) SetReadable() { r.ready |= eventloop.Readable }

// Read records the outcome of a read of n bytes.
func (r *Readiness) Read(n int, res SocketResult) {
	switch res {
	case WouldBlock:
		if n == 0 {
			r.drain = false // a real EAGAIN: drained
		}
		if !r.drain {
			r.ready &^= eventloop.Readable
		}
	case Closed, Error:
		r.ready &^= eventloop.Readable
	}
}

// Wrote records the outcome of a write.
func (r *Readiness) Wrote(res SocketResult) {
	if res == WouldBlock {
		r.ready &^= eventloop.Writable
	}
}

// Ready is the recorded readiness, for state dumps.
func (r *Readiness) Ready() eventloop.Ready { return r.ready }

// Reset forgets everything (a new socket in the same place).
func (r *Readiness) Reset() { *r = Readiness{} }
