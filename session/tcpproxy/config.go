// Package tcpproxy is sluice's TCP reference session: a layer-4 proxy
// that optionally expects a PROXY-protocol header from the client,
// connects to a backend of its cluster (with retries across backends),
// optionally sends or relays a PROXY header to it, and then relays bytes
// both ways with a [pipe.Pipe]. See LIFECYCLE.md.
package tcpproxy

import (
	"errors"
	"sync/atomic"
	"time"
)

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
}

// ErrRelayNeedsExpect is returned by NewListener for Relay without
// ExpectProxy: there would be nothing to relay.
var ErrRelayNeedsExpect = errors.New("tcpproxy: SendProxy Relay needs ExpectProxy")

func (c Config) withDefaults() Config {
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
	}
}
