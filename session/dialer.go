package session

import (
	"errors"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/timer"
)

// MaxDialAttempts bounds [Dialer.Attempts], so that the list of backends
// a dial tried needs no allocation.
const MaxDialAttempts = 16

// Defaults of a [Dialer].
const (
	DefaultDialAttempts = 3
	DefaultDialTimeout  = 3 * time.Second
)

// ErrNoBackend is [Dialer.Err] when the cluster is unknown or empty, or
// every backend it offered failed.
var ErrNoBackend = errors.New("session: no backend left to try")

// DialState is where a [Dialer] stands.
type DialState uint8

const (
	// DialIdle: not dialing (before Dial, after Close).
	DialIdle DialState = iota
	// DialConnecting: a non-blocking connect is under way; the session
	// passes the socket's events and timer to the dialer.
	DialConnecting
	// DialConnected: the connection is established; the session reads
	// and writes [Dialer.Socket].
	DialConnected
	// DialFailed: no backend could be reached ([Dialer.Err] says why);
	// the session answers (HTTP's 503) or closes.
	DialFailed
	// DialTaken: the session holds the connection itself, one that
	// [Dialer.Take] found established or one [Dialer.Handoff] gave it;
	// the dialer keeps only the backend's accounting until Close.
	DialTaken
)

var dialStateNames = [...]string{"idle", "connecting", "connected", "failed", "taken"}

// TakeResult is what a [Dialer.Take] hook did with a backend.
type TakeResult uint8

const (
	// TakeNone: nothing established to take; the dialer connects.
	TakeNone TakeResult = iota
	// Taken: the session took an established connection to the backend;
	// the dial ends in DialTaken.
	Taken
	// TakeSkip: the backend cannot serve now (the hook found out and
	// reported it); the dialer picks the next one.
	TakeSkip
)

// String names the state.
func (s DialState) String() string {
	if int(s) < len(dialStateNames) {
		return dialStateNames[s]
	}
	return "DialState(?)"
}

// Dialer takes a session from "I need a backend of this cluster" to an
// established connection: it picks a backend the dial has not tried yet
// (by key when the cluster's policy hashes), connects without blocking,
// registers the socket under a new token of the session, bounds the
// connect with a timer on that token, and on a failure or timeout
// reports it to the backend (which backs off after repeated failures)
// and moves on to the next backend. Once connected it keeps the
// connection's accounting: [Dialer.Close] ends it.
//
// A Dialer lives inside its session (no allocation) and belongs to its
// loop. The session hands it the events and timers of its tokens; the
// dialer takes those of a connect under way:
//
//	// in UpdateReadiness: if !s.d.Event(t, r) { /* another socket's */ }
//	// in Ready:           if s.d.Poll() == session.DialConnected { ... }
//	// in Timeout:         if s.d.Timeout(t, name) == session.DialFailed { ... }
//	// in Close:           s.d.Close()
//
// Its connect timer is named [DialTimer] on [Dialer.Token], so the
// session may keep timers of its own on that token.
type Dialer struct {
	// Cluster is where backends are picked.
	Cluster string
	// Attempts is how many backends one Dial tries at most. Default 3;
	// at most MaxDialAttempts.
	Attempts int
	// ConnectTimeout bounds each connect. Default 3 s.
	ConnectTimeout time.Duration
	// Key, with UseKey, is handed to the cluster's policy, so that a
	// consistent-hashing policy sends equal keys to the same backend.
	Key    uint64
	UseKey bool
	// Sticky, when set, is the backend the first pick prefers
	// ([backend.Cluster.PickSticky]): a client's sticky-session cookie.
	Sticky string
	// BackendID, when set, names the one backend of the cluster to dial:
	// no other is tried.
	BackendID string
	// Take, when set, is asked about each backend the dial picks before
	// a connect starts: a session that keeps established connections (an
	// idle keep-alive pool, multiplexed HTTP/2 connections) takes one to
	// b and returns Taken, or says TakeNone to have the dialer connect,
	// or TakeSkip to move on to the next backend. self is the session
	// given to Dial, so that a plain function (no closure made per
	// session) can serve every session of a kind.
	Take func(self ProxySession, b *backend.Backend) TakeResult
	// OnFail, when set, hears of each failed attempt (err is
	// ErrDialTimeout after the timer, else the connect's error): for the
	// session's counters and logs. The dialer has already told the
	// backend.
	OnFail func(b *backend.Backend, err error)

	lp    *Loop
	self  ProxySession
	state DialState
	err   error
	b     *backend.Backend
	sock  protocol.TCPSocket
	token eventloop.Token
	ready protocol.Readiness
	timer timer.Handle
	began time.Time // the current connect's start
	tried [MaxDialAttempts]*backend.Backend
	n     int
}

// ErrDialTimeout is what [Dialer.OnFail] hears of a connect that took
// longer than [Dialer.ConnectTimeout].
var ErrDialTimeout = errors.New("session: backend connect timed out")

// Dial starts connecting to a backend of d.Cluster; the socket's token
// is registered to self. It returns DialConnecting, or DialFailed when no
// backend could even be tried. Dial forgets the backends an earlier dial
// tried: call it once per request.
func (d *Dialer) Dial(lp *Loop, self ProxySession) DialState {
	d.Close()
	d.lp, d.self = lp, self
	d.n, d.err = 0, nil
	clear(d.tried[:])
	return d.next()
}

// next tries the backends not tried yet until a connect is under way.
func (d *Dialer) next() DialState {
	lp := d.lp
	attempts := d.Attempts
	if attempts <= 0 {
		attempts = DefaultDialAttempts
	}
	attempts = min(attempts, MaxDialAttempts)
	c := lp.Clusters().Cluster(d.Cluster)
	for c != nil && d.n < attempts {
		var b *backend.Backend
		var err error
		switch {
		case d.BackendID != "":
			b, err = c.Backend(d.BackendID), nil
			if b == nil || d.n > 0 || !b.Available(lp.Now()) {
				err = ErrNoBackend
			}
		case d.UseKey:
			b, err = c.PickKey(lp.Now(), d.Key, d.tried[:d.n])
		case d.Sticky != "" && d.n == 0:
			b, err = c.PickSticky(lp.Now(), d.Sticky, nil)
		default:
			b, err = c.Pick(lp.Now(), d.tried[:d.n])
		}
		if err != nil {
			break
		}
		d.tried[d.n] = b
		d.n++
		if d.Take != nil {
			switch d.Take(d.self, b) {
			case Taken:
				b.Acquired()
				d.b, d.state = b, DialTaken
				return d.state
			case TakeSkip:
				continue
			}
		}
		b.ConnectStarted()
		d.began = lp.Now()
		fd, err := protocol.Connect(b.Address)
		if err != nil {
			d.failed(b, err)
			continue
		}
		t, err := lp.Register(fd, d.self)
		if err != nil { // out of tokens: no other backend would do better
			closeFD(fd)
			b.Released()
			d.err, d.state = err, DialFailed
			return d.state
		}
		protocol.SetNoDelay(fd, true)
		timeout := d.ConnectTimeout
		if timeout <= 0 {
			timeout = DefaultDialTimeout
		}
		d.b, d.sock, d.token = b, protocol.NewTCPSocket(fd), t
		d.ready.Reset()
		d.timer = lp.Schedule(t, DialTimer, timeout)
		d.state = DialConnecting
		return d.state
	}
	if d.err == nil {
		d.err = ErrNoBackend
	}
	d.state = DialFailed
	return d.state
}

// failed reports a failed attempt to the backend (which ends its
// accounting) and to the session.
func (d *Dialer) failed(b *backend.Backend, err error) {
	b.ConnectFailed(d.lp.Now())
	d.err = err
	if d.OnFail != nil {
		d.OnFail(b, err)
	}
}

// drop abandons the connect under way.
func (d *Dialer) drop() {
	d.lp.Timers().Cancel(d.timer)
	d.lp.Release(d.token, d.sock.Fd())
	d.sock.Close()
	d.b = nil
}

// Owns reports whether t is the token of the dialer's socket, connecting
// or connected.
func (d *Dialer) Owns(t eventloop.Token) bool {
	return (d.state == DialConnecting || d.state == DialConnected) && t == d.token
}

// Event records r when t is the token of a connect under way, for Poll
// to act on, and reports whether it was. Once connected the socket's
// events are the session's: Event reports false.
func (d *Dialer) Event(t eventloop.Token, r eventloop.Ready) bool {
	if d.state != DialConnecting || t != d.token {
		return false
	}
	d.ready.Update(r)
	return true
}

// Poll finishes a connect once its socket has said something: connected,
// or failed and on to the next backend. It returns the state; it does
// nothing in the other states.
func (d *Dialer) Poll() DialState {
	for d.state == DialConnecting && d.ready.Writable() {
		b := d.b
		if err := protocol.ConnectResult(d.sock.Fd()); err != nil {
			d.drop()
			d.failed(b, err)
			d.next()
			continue
		}
		now := d.lp.Now()
		b.ConnectSucceeded(now, now.Sub(d.began))
		d.lp.Timers().Cancel(d.timer)
		d.state = DialConnected
	}
	return d.state
}

// Timeout takes the timer t, name when it is the dialer's connect timer:
// the connect took too long, so it fails and the next backend is tried.
// It returns the state (unchanged for any other timer).
func (d *Dialer) Timeout(t eventloop.Token, name eventloop.TimerName) DialState {
	if d.state == DialConnecting && t == d.token && name == DialTimer {
		b := d.b
		d.drop()
		d.failed(b, ErrDialTimeout)
		d.next()
	}
	return d.state
}

// Handoff gives the connected socket and its token to the session, which
// closes or pools them from then on ([Loop.Release] the token); the
// dialer keeps the backend's accounting (state DialTaken) until Close.
// It returns what the socket reported so far too, for the session's
// readiness. Only valid in DialConnected.
func (d *Dialer) Handoff() (protocol.TCPSocket, eventloop.Token, protocol.Readiness) {
	if d.state != DialConnected {
		panic("session: Dialer.Handoff while " + d.state.String())
	}
	d.state = DialTaken
	sock, t, r := d.sock, d.token, d.ready
	d.sock, d.token = protocol.NewTCPSocket(-1), 0
	d.ready.Reset()
	return sock, t, r
}

// Next gives up the taken connection, which failed before it carried
// anything (its owner reported the failure to the backend), and goes on
// with the backends this dial has not tried. It returns the new state.
func (d *Dialer) Next() DialState {
	if d.state == DialTaken {
		d.b.Released()
		d.b, d.state = nil, DialIdle
	}
	if d.state != DialIdle || d.lp == nil {
		return d.state
	}
	return d.next()
}

// State is where the dialer stands.
func (d *Dialer) State() DialState { return d.state }

// Err is why the dial failed, in DialFailed: ErrNoBackend when the
// cluster offered none, else the last attempt's error.
func (d *Dialer) Err() error { return d.err }

// Socket is the backend socket (connecting or connected).
func (d *Dialer) Socket() *protocol.TCPSocket { return &d.sock }

// Token is the backend socket's token.
func (d *Dialer) Token() eventloop.Token { return d.token }

// Backend is the backend being connected to, or connected.
func (d *Dialer) Backend() *backend.Backend { return d.b }

// TakeReadiness hands over what the socket reported while it connected,
// once: a session that takes the connected socket over (a pipe, a
// protocol's client) merges it into its own readiness, since those edges
// will not come again. Later calls return nothing.
func (d *Dialer) TakeReadiness() protocol.Readiness {
	r := d.ready
	d.ready.Reset()
	return r
}

// Attempted is how many backends the last Dial tried.
func (d *Dialer) Attempted() int { return d.n }

// Close ends the dialer's connection: it cancels the timer, releases the
// token, closes the socket and ends the backend's accounting. It is safe
// on a dialer in any state, and twice.
func (d *Dialer) Close() {
	switch d.state {
	case DialConnecting, DialConnected:
		b := d.b
		d.drop()
		b.Released()
	case DialTaken:
		d.b.Released()
		d.b = nil
	}
	d.state = DialIdle
}
