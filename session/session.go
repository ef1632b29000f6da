package session

import (
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
)

// Protocol names what a session speaks, for dispatch decisions, metrics
// and logs. The values follow Sōzu's.
type Protocol uint8

const (
	HTTP Protocol = iota
	HTTPS
	TCP
	HTTPListen
	HTTPSListen
	TCPListen
	Channel
	Metrics
	Timer
)

var protocolNames = [...]string{"HTTP", "HTTPS", "TCP", "HTTPListen", "HTTPSListen", "TCPListen", "Channel", "Metrics", "Timer"}

// String names the protocol.
func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// IsListener reports whether sessions of this protocol accept
// connections rather than carry one.
func (p Protocol) IsListener() bool {
	return p == HTTPListen || p == HTTPSListen || p == TCPListen
}

// Result is what a session tells the worker after Ready, Timeout or
// ShuttingDown.
type Result uint8

const (
	// Continue: the session has nothing more to do until its next event.
	Continue Result = iota
	// Close: the worker closes the session (calls Close, frees its
	// frontend token and its connection slot).
	Close
	// ConnectBackend: the session needs a backend connection; the worker
	// calls its [BackendConnector] and then Ready again.
	ConnectBackend
)

// String names the result.
func (r Result) String() string {
	switch r {
	case Continue:
		return "continue"
	case Close:
		return "close"
	case ConnectBackend:
		return "connect-backend"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// ProxySession is one client connection and everything it owns: its
// frontend socket, its backend sockets, their tokens, timers and
// buffers. It is Sōzu's ProxySession trait in Go. Every method runs on
// the worker's loop goroutine.
type ProxySession interface {
	// Protocol is what the session speaks.
	Protocol() Protocol
	// Ready does the work the readiness recorded by UpdateReadiness
	// allows, until it would block. self is the session as the worker
	// stores it (the outermost value when sessions embed one another),
	// to hand to [Worker.Register] for new tokens.
	Ready(self ProxySession) Result
	// UpdateReadiness records an event for one of the session's tokens.
	UpdateReadiness(t eventloop.Token, r eventloop.Ready)
	// Close deregisters and closes every socket, releases every token
	// but the frontend one (the worker frees that), cancels timers and
	// returns buffers. It is called once.
	Close()
	// Timeout reports that the timer keyed by t fired.
	Timeout(t eventloop.Token) Result
	// LastEvent is when the session last saw an event; the zombie check
	// closes sessions silent for too long.
	LastEvent() time.Time
	// PrintSession writes a state dump for debugging.
	PrintSession(w io.Writer)
	// FrontendToken is the token of the client socket, the session's key.
	FrontendToken() eventloop.Token
	// ShuttingDown is asked during a soft stop: Close when the session
	// can end now (idle, or its exchange finished), Continue to be asked
	// again later.
	ShuttingDown() Result
	// ClusterID is the cluster the session is routed to, if any.
	ClusterID() (string, bool)
	// SessionAddress is the client's address: the PROXY-protocol source
	// when there was one, else the peer.
	SessionAddress() (netip.AddrPort, bool)
}

// BackendConnector is the optional ability behind [ConnectBackend].
type BackendConnector interface {
	ConnectBackend(self ProxySession) Result
}

// Base provides the two methods of [ProxySession] that have defaults in
// Sōzu: embed it and set its fields.
type Base struct {
	// Cluster is the cluster id the session was routed to, "" if none.
	Cluster string
	// Peer is the accepted socket's peer address.
	Peer netip.AddrPort
	// Source is the client address a PROXY-protocol header gave, if any;
	// it wins over Peer.
	Source netip.AddrPort
}

// ClusterID returns the routed cluster, if any.
func (b *Base) ClusterID() (string, bool) { return b.Cluster, b.Cluster != "" }

// SessionAddress returns Source when set, else Peer.
func (b *Base) SessionAddress() (netip.AddrPort, bool) {
	if b.Source.IsValid() {
		return b.Source, true
	}
	return b.Peer, b.Peer.IsValid()
}
