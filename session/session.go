package session

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
)

// Protocol names what a session speaks, for logs, metrics and dispatch
// decisions. It is an open value: a user's protocol names itself
// (Protocol("redis")) next to the reference ones.
type Protocol string

// The protocols of the reference sessions.
const (
	TCP   Protocol = "TCP"
	HTTP  Protocol = "HTTP"
	HTTPS Protocol = "HTTPS"
)

// String returns the name.
func (p Protocol) String() string { return string(p) }

// Result is what a session tells the worker after Ready, Timeout or
// ShuttingDown.
type Result uint8

const (
	// Continue: the session has nothing more to do until its next event
	// or timer. From ShuttingDown: ask again later.
	Continue Result = iota
	// Close: the worker closes the session (calls Close, frees its
	// frontend token and its connection slot).
	Close
	// Again: the worker calls Ready now. From Timeout it lets a timer
	// hand over to the session's usual path (a retry timer: Ready
	// connects); from Ready it asks for another round at once.
	Again
)

// String names the result.
func (r Result) String() string {
	switch r {
	case Continue:
		return "continue"
	case Close:
		return "close"
	case Again:
		return "again"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// ProxySession is one client connection and everything it owns: its
// frontend socket, its backend sockets, their tokens, timers and
// buffers. It is Sōzu's ProxySession trait in Go. Every method runs on
// the worker's loop goroutine. Embed [Base] for the methods that have
// defaults.
type ProxySession interface {
	// Protocol is what the session speaks.
	Protocol() Protocol
	// Ready does the work the readiness recorded by UpdateReadiness
	// allows, until it would block. self is the session as the worker
	// stores it (the outermost value when sessions embed one another),
	// to hand to [Loop.Register] for new tokens.
	Ready(self ProxySession) Result
	// UpdateReadiness records an event for one of the session's tokens;
	// Ready follows.
	UpdateReadiness(t eventloop.Token, r eventloop.Ready)
	// Close deregisters and closes every socket, releases every token
	// but the frontend one ([Loop.Release]; the worker frees the
	// frontend token and its connection slot), cancels timers and
	// returns buffers. The worker calls it once: after Ready, Timeout
	// or ShuttingDown answered Close, at a hard stop, after a panic, or
	// from the zombie check.
	Close()
	// Timeout reports that the timer named name of token t (one of the
	// session's tokens; see [Loop.Schedule]) fired: Continue to carry
	// on, Close to end the session, Again to have Ready called now.
	Timeout(t eventloop.Token, name eventloop.TimerName) Result
	// LastEvent is when the session last saw an event; the zombie check
	// closes sessions silent for too long.
	LastEvent() time.Time
	// PrintSession writes a state dump for debugging.
	PrintSession(w io.Writer)
	// FrontendToken is the token of the client socket, the session's key.
	FrontendToken() eventloop.Token
	// ShuttingDown is asked during a soft stop, every 50 ms until the
	// session has closed: Close when it can end now (idle, or its
	// exchange finished), Continue to be asked again.
	ShuttingDown() Result
	// ClusterID is the cluster the session is routed to, if any.
	ClusterID() (string, bool)
	// SessionAddress is the client's address: the PROXY-protocol source
	// when there was one, else the peer.
	SessionAddress() (netip.AddrPort, bool)
}

// Base provides the methods of [ProxySession] that have defaults: embed
// it and keep its fields current. A session still writes Protocol, Ready,
// UpdateReadiness, Timeout and Close.
type Base struct {
	// Token is the session's frontend token ([Accepted.Token]).
	Token eventloop.Token
	// Last is when the session last saw an event; set it from
	// UpdateReadiness ([Loop.Now]).
	Last time.Time
	// Cluster is the cluster id the session was routed to, "" if none.
	Cluster string
	// Peer is the accepted socket's peer address.
	Peer netip.AddrPort
	// Source is the client address a PROXY-protocol header gave, if any;
	// it wins over Peer.
	Source netip.AddrPort
}

// FrontendToken returns Token.
func (b *Base) FrontendToken() eventloop.Token { return b.Token }

// LastEvent returns Last.
func (b *Base) LastEvent() time.Time { return b.Last }

// ClusterID returns the routed cluster, if any.
func (b *Base) ClusterID() (string, bool) { return b.Cluster, b.Cluster != "" }

// SessionAddress returns Source when set, else Peer.
func (b *Base) SessionAddress() (netip.AddrPort, bool) {
	if b.Source.IsValid() {
		return b.Source, true
	}
	return b.Peer, b.Peer.IsValid()
}

// ShuttingDown returns Continue: during a soft stop the session is left
// to end on its own (a TCP relay when a side closes). A session with
// message boundaries overrides it to end once idle.
func (b *Base) ShuttingDown() Result { return Continue }

// PrintSession writes the token, the client, the cluster and the last
// event.
func (b *Base) PrintSession(w io.Writer) {
	a, _ := b.SessionAddress()
	fmt.Fprintf(w, "token %d client %v cluster %q last event %s", b.Token, a, b.Cluster, b.Last.Format(time.RFC3339Nano))
}
