// Package tcpproxy is sluice's TCP reference session: a layer-4 proxy
// that optionally expects a PROXY-protocol header from the client, can
// route each connection from its first bytes ([Config.Route]: an SNI
// router, a protocol greeting), connects to a backend of the chosen
// cluster with a [session.Dialer] (retries across backends), optionally
// sends or relays a PROXY header to it, and then relays bytes both ways
// with a [pipe.Pipe], the peeked bytes first. See LIFECYCLE.md.
package tcpproxy

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"
)

// Peek is what a routing stage sees of a new connection.
type Peek struct {
	// Data is what the client sent so far, after its PROXY header if any.
	// It is valid during the call only; the same bytes go to the backend.
	Data []byte
	// Client is the client's address (its PROXY header's source, if any).
	Client netip.AddrPort
	// Local is the address the client reached (its PROXY header's
	// destination, if any).
	Local netip.AddrPort
	// Final: no more bytes will come before a decision (the client
	// closed its side, the buffer is full, or RouteTimeout passed).
	// ErrNeedMore then closes the connection.
	Final bool
}

// Decision is where a routed connection goes.
type Decision struct {
	// Cluster is the cluster to dial; "" keeps Config.Cluster.
	Cluster string
	// Key, with UseKey, is handed to the cluster's policy: a
	// consistent-hashing policy sends equal keys to the same backend.
	Key    uint64
	UseKey bool
}

// RouteFunc decides where a connection goes from its first bytes. It runs
// on the worker's loop: it must not block. It returns ErrNeedMore to see
// more bytes, and any other error to refuse the connection (closed and
// counted).
type RouteFunc func(p Peek) (Decision, error)

// ErrNeedMore is what a [RouteFunc] returns when it cannot decide yet.
var ErrNeedMore = errors.New("tcpproxy: need more bytes to route")

// ProxyMode says what the session sends its backend before the client's
// bytes.
type ProxyMode uint8

const (
	// SendNone sends nothing.
	SendNone ProxyMode = iota
	// SendV1 sends a PROXY v1 header built from the client's address
	// (the received PROXY source when ExpectProxy is on) and the address
	// the client connected to.
	SendV1
	// SendV2 sends the same as a v2 binary header.
	SendV2
	// Relay forwards the header the client sent, byte for byte. It needs
	// ExpectProxy.
	Relay
)

// Config is a TCP listener's settings. Zero values take the defaults.
type Config struct {
	// Name labels the listener's metrics (listener="..."). Default
	// "tcp". Listeners with the same name are counted together.
	Name string
	// Cluster is the cluster whose backends receive the connections.
	Cluster string
	// ConnectTimeout bounds one backend connect attempt. Default 3 s.
	ConnectTimeout time.Duration
	// FrontTimeout closes a session whose client side has neither sent
	// nor taken a byte for this long. Default 60 s.
	FrontTimeout time.Duration
	// BackTimeout closes a session whose backend side has neither sent
	// nor taken a byte for this long. Default 30 s.
	BackTimeout time.Duration
	// ConnectAttempts is how many backends one client may be tried on
	// before it is closed. Default 3.
	ConnectAttempts int
	// ExpectProxy requires a PROXY-protocol header (v1 or v2) from the
	// client; its source becomes the session's address. A client that
	// sends anything else, or nothing within HeaderTimeout, is closed.
	ExpectProxy bool
	// HeaderTimeout bounds the wait for an expected PROXY header.
	// Default 10 s.
	HeaderTimeout time.Duration
	// SendProxy sets what the backend receives first.
	SendProxy ProxyMode
	// Route, when set, is the routing stage: it sees the client's first
	// bytes (after the PROXY header) and its address, and picks the
	// cluster, asking for more bytes until it can decide. The bytes it
	// saw are replayed to the backend. Nil: every connection goes to
	// Cluster at once.
	Route RouteFunc
	// RouteTimeout bounds the wait for Route to decide; then Route is
	// asked a last time with Peek.Final. Default 5 s.
	RouteTimeout time.Duration
}

// ErrRelayNeedsExpect is returned by NewListener for Relay without
// ExpectProxy: there would be nothing to relay.
var ErrRelayNeedsExpect = errors.New("tcpproxy: SendProxy Relay needs ExpectProxy")

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "tcp"
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 3 * time.Second
	}
	if c.FrontTimeout <= 0 {
		c.FrontTimeout = 60 * time.Second
	}
	if c.BackTimeout <= 0 {
		c.BackTimeout = 30 * time.Second
	}
	if c.ConnectAttempts <= 0 {
		c.ConnectAttempts = 3
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.RouteTimeout <= 0 {
		c.RouteTimeout = 5 * time.Second
	}
	return c
}

// Stats counts what happened on a listener, across all workers that
// share it. Read them with Snapshot.
type Stats struct {
	sessions        atomic.Uint64
	proxyRejected   atomic.Uint64
	proxyTimedOut   atomic.Uint64
	connectFailed   atomic.Uint64
	connectTimedOut atomic.Uint64
	noBackend       atomic.Uint64
	frontTimeouts   atomic.Uint64
	backTimeouts    atomic.Uint64
	reset           atomic.Uint64
	routed          atomic.Uint64
	routeRejected   atomic.Uint64
	routeTimedOut   atomic.Uint64
	bytesIn         atomic.Uint64
	bytesOut        atomic.Uint64
}

// StatsSnapshot is a copy of a listener's counters.
type StatsSnapshot struct {
	Sessions        uint64 // sessions closed
	ProxyRejected   uint64 // expected a PROXY header, got something else
	ProxyTimedOut   uint64 // expected a PROXY header, got nothing in time
	ConnectFailed   uint64 // backend connect attempts refused or failed
	ConnectTimedOut uint64 // backend connect attempts that timed out
	NoBackend       uint64 // clients closed because every attempt failed or no backend exists
	FrontTimeouts   uint64
	BackTimeouts    uint64
	Reset           uint64 // sessions ended by a reset or a socket error
	Routed          uint64 // connections Config.Route sent to a cluster
	RouteRejected   uint64 // connections Config.Route refused
	RouteTimedOut   uint64 // connections Config.Route could not decide on
	BytesIn         uint64 // client to backend
	BytesOut        uint64 // backend to client
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Sessions: s.sessions.Load(), ProxyRejected: s.proxyRejected.Load(), ProxyTimedOut: s.proxyTimedOut.Load(),
		ConnectFailed: s.connectFailed.Load(), ConnectTimedOut: s.connectTimedOut.Load(), NoBackend: s.noBackend.Load(),
		FrontTimeouts: s.frontTimeouts.Load(), BackTimeouts: s.backTimeouts.Load(), Reset: s.reset.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		Routed: s.routed.Load(), RouteRejected: s.routeRejected.Load(), RouteTimedOut: s.routeTimedOut.Load(),
	}
}
