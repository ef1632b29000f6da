package eventloop

import "strings"

// Token names one registration with a [Poller]: the poller hands it back
// with every event for that descriptor. Sessions get their tokens from a
// slab, so a token is a small integer and doubles as an index.
type Token uint32

// NoToken is never handed out to a registration. The loop uses it when it
// reports something that belongs to no descriptor, such as a panic in
// posted work.
const NoToken Token = ^Token(0)

// wakerToken is the loop's own registration for its [Waker].
const wakerToken Token = NoToken - 1

// MaxToken is the largest token a caller may register; the values above
// it are reserved for the loop.
const MaxToken Token = wakerToken - 1

// TimerName tells the timers of one token apart: a session may keep an
// idle timer, a connect timer and a retry timer on the same token and
// hears which one fired. Its meaning is the token owner's; a token with
// one timer uses 0.
type TimerName uint8

// TimerKey is what the loop's timer wheel keys its timers by: the token
// they belong to and which of its timers each is.
type TimerKey struct {
	Token Token
	Name  TimerName
}

// Interest says which readiness a registration wants to hear about.
type Interest uint8

const (
	// InterestRead asks for readable edges (and read-side closes).
	InterestRead Interest = 1 << iota
	// InterestWrite asks for writable edges.
	InterestWrite
)

// InterestBoth is what a proxy session usually registers once: with edge
// triggering there is no cost to hearing about writability it does not
// need yet, and it avoids a reregister system call per state change.
const InterestBoth = InterestRead | InterestWrite

// Ready is the set of conditions one event reports for a descriptor. With
// edge triggering an event only says something changed: a session keeps
// its own readiness (interest & events) and clears a bit only when an
// operation answers "would block".
type Ready uint8

const (
	// Readable: a read may make progress (data, EOF or an error waits).
	Readable Ready = 1 << iota
	// Writable: a write may make progress, or a connect has finished.
	Writable
	// Error: the socket has a pending error (SO_ERROR tells which).
	Error
	// ReadClosed: the peer shut down its sending side; reads return the
	// data still buffered, then EOF (EPOLLRDHUP, EV_EOF on EVFILT_READ).
	ReadClosed
	// WriteClosed: the socket can no longer send (EPOLLHUP, EV_EOF on
	// EVFILT_WRITE).
	WriteClosed
	// Priority: TCP urgent data arrived (EPOLLPRI; Linux only). A read
	// stops at the urgent mark with bytes still queued behind it, so
	// until a read answers EAGAIN a short read does not mean drained.
	Priority
)

// HangUp is both directions closed: nothing more can be exchanged once the
// buffered input has been read.
const HangUp = ReadClosed | WriteClosed

// IsReadable reports whether the event says a read may make progress.
func (r Ready) IsReadable() bool { return r&Readable != 0 }

// IsWritable reports whether the event says a write may make progress.
func (r Ready) IsWritable() bool { return r&Writable != 0 }

// IsError reports whether the socket has a pending error.
func (r Ready) IsError() bool { return r&Error != 0 }

// IsReadClosed reports whether the peer will send nothing more.
func (r Ready) IsReadClosed() bool { return r&ReadClosed != 0 }

// IsPriority reports whether urgent data arrived.
func (r Ready) IsPriority() bool { return r&Priority != 0 }

// IsHangUp reports whether both directions are closed.
func (r Ready) IsHangUp() bool { return r&HangUp == HangUp }

// Has reports whether every bit of m is set.
func (r Ready) Has(m Ready) bool { return r&m == m }

// String lists the set bits, for logs and session dumps.
func (r Ready) String() string {
	if r == 0 {
		return "none"
	}
	names := [...]string{"readable", "writable", "error", "read-closed", "write-closed", "priority"}
	var b strings.Builder
	for i, n := range names {
		if r&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// Ready returns the readiness bits this interest corresponds to, so a
// session can keep readiness = interest & events in one type.
func (i Interest) Ready() Ready {
	var r Ready
	if i&InterestRead != 0 {
		r |= Readable | ReadClosed | Error | Priority
	}
	if i&InterestWrite != 0 {
		r |= Writable | WriteClosed | Error
	}
	return r
}
