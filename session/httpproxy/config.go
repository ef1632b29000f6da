// Package httpproxy is sluice's HTTP/1.1 reference session: a reverse
// proxy that parses requests and responses in place (protocol/http1),
// routes each request by host, path and method (router), forwards it to a
// backend of the chosen cluster over a pooled keep-alive connection, and
// edits heads without re-serialising untouched bytes. See LIFECYCLE.md.
package httpproxy

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/http1"
)

// Config is an HTTP listener's settings. Zero values take the defaults.
type Config struct {
	// Name labels the listener's metrics (listener="..."). Default
	// "http", or "https" with TLS. Listeners with the same name are
	// counted together.
	Name string
	// Hooks run for every request of the listener, in order, before the
	// hooks of its route ([Listener.SetRouteHooks]). See [Hooks].
	Hooks []Hooks
	// RequestTimeout bounds the time from a request's first byte to the
	// end of its head: a slower client gets 408. Default 10 s.
	RequestTimeout time.Duration
	// FrontTimeout closes an idle keep-alive client connection, and one
	// that takes no response byte for that long. Default 60 s.
	FrontTimeout time.Duration
	// ConnectTimeout bounds one backend connect. Default 3 s.
	ConnectTimeout time.Duration
	// BackTimeout bounds the wait for the backend: a response head that
	// does not start within it gets 504; a response body that stalls
	// for it closes the connection. Default 30 s.
	BackTimeout time.Duration
	// ConnectAttempts is how many backends a request may be tried on
	// before 503. Default 3.
	ConnectAttempts int
	// TunnelTimeout closes a connection upgraded by a 101 response
	// (WebSocket) when either side has been silent that long. Default
	// 1 h, since such connections idle by design.
	TunnelTimeout time.Duration
	// StopIdleAfter is how long a soft stop keeps a keep-alive
	// connection that was just used: a client that got a response a
	// moment ago may have its next request on the way, and closing the
	// connection under it is an error the client sees (HAProxy's
	// idle-close-on-response). Such a connection stays open until it has
	// been idle this long; a request that comes meanwhile is answered
	// with Connection: close. Connections idle for longer close at once.
	// Default 1 s; negative: close every idle connection at once.
	StopIdleAfter time.Duration
	// MaxBody bounds a request body: 413 beyond it (a Content-Length
	// over it is refused before anything is forwarded). 0: no limit.
	MaxBody int64
	// MaxIdlePerBackend bounds the idle keep-alive connections kept per
	// backend (per worker). Default 1024: an HTTP/2 client multiplexing
	// many streams needs as many backend connections at once, and an idle
	// one costs only its socket (the idle timeout below closes them);
	// negative disables pooling.
	MaxIdlePerBackend int
	// IdleBackendTimeout closes a pooled backend connection unused that
	// long. Default 30 s (below most servers' own keep-alive timeouts,
	// so that the proxy, not the server, usually closes first).
	IdleBackendTimeout time.Duration
	// Limits bounds heads: see [http1.Limits]. Default: 16 KiB head,
	// 8 KiB request line, 100 fields.
	Limits http1.Limits
	// Answers replaces the bodies of the proxy's own answers by status
	// (400, 401, 404, 408, 413, 414, 429, 431, 501, 502, 503, 504, 505,
	// and redirects); templates set per cluster with SetClusterAnswers
	// win over these. Default: a one-line text body.
	Answers map[int]Answer
	// StickyCookie, when set, names the cookie that keeps a client on
	// one backend: a request carrying it goes to the backend with that
	// StickyID while that backend is available, and a response from a
	// backend other than the cookie's sets it (Path=/; HttpOnly).
	StickyCookie string
	// ExpectProxy requires a PROXY-protocol header (v1 or v2) before the
	// first request; its source becomes the client address (logs,
	// X-Forwarded-For, Forwarded). A connection that sends anything else
	// is closed and counted; one that sends nothing gets the request
	// timeout.
	ExpectProxy bool
	// AccessLog, when set, gets one line per request. Default: none.
	AccessLog *slog.Logger
	// OmitForwarding lists the forwarding fields the proxy does not add
	// to the requests it forwards. By default it adds all of them: the
	// client's address appended to X-Forwarded-For and Forwarded (RFC
	// 7239), X-Forwarded-Proto, X-Forwarded-Port and X-Request-Id unless
	// the client sent them. An omitted field the client sent passes as it
	// came, so a backend must not trust one the proxy omits (HAProxy
	// without "option forwardfor" behaves this way). The request id
	// stays in the access log and the proxy's answers either way.
	OmitForwarding Forwarding
	// Scheme is what X-Forwarded-Proto and Forwarded say. Default
	// "https" with TLS, else "http".
	Scheme string
	// TLS, when set, makes this an HTTPS listener: see [TLS].
	TLS *TLS
	// H2C accepts HTTP/2 with prior knowledge (RFC 9113 §3.3) on a
	// cleartext listener: a connection that starts with the HTTP/2
	// preface is an HTTP/2 connection. Default off.
	H2C bool
	// HTTP2 configures HTTP/2 connections (HTTPS by ALPN "h2", or H2C):
	// streams, windows, limits and flood budgets; see [h2.ServerConfig].
	// Each stream is proxied as an HTTP/1.1 exchange with this listener's
	// settings. Zero values take h2's defaults.
	HTTP2 h2.ServerConfig
}

// Forwarding is a set of the fields the proxy adds to a request so
// that the backend learns about the client: see Config.OmitForwarding.
type Forwarding uint8

const (
	XForwardedFor   Forwarding = 1 << iota // X-Forwarded-For: the client's address, appended
	XForwardedProto                        // X-Forwarded-Proto: Config.Scheme
	XForwardedPort                         // X-Forwarded-Port: the port the client reached
	Forwarded                              // Forwarded (RFC 7239): for= and proto=, appended
	XRequestID                             // X-Request-Id: the proxy's id for the request

	AllForwarding = XForwardedFor | XForwardedProto | XForwardedPort | Forwarded | XRequestID
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RequestTimeout, 10*time.Second)
	def(&c.FrontTimeout, 60*time.Second)
	def(&c.ConnectTimeout, 3*time.Second)
	def(&c.BackTimeout, 30*time.Second)
	def(&c.IdleBackendTimeout, 30*time.Second)
	def(&c.TunnelTimeout, time.Hour)
	if c.StopIdleAfter == 0 {
		c.StopIdleAfter = time.Second
	}
	if c.ConnectAttempts <= 0 {
		c.ConnectAttempts = 3
	}
	if c.MaxIdlePerBackend == 0 {
		c.MaxIdlePerBackend = 1024
	}
	if c.Name == "" {
		c.Name = "http"
		if c.TLS != nil {
			c.Name = "https"
		}
	}
	if c.Scheme == "" {
		c.Scheme = "http"
		if c.TLS != nil {
			c.Scheme = "https"
		}
	}
	return c
}

// Stats counts what happened on a listener across the workers that
// share it.
type Stats struct {
	requests, responses                atomic.Uint64
	answers                            [answerCount]atomic.Uint64
	reusedBackend, newBackend, retried atomic.Uint64
	tunnels                            atomic.Uint64
	backendReset, backendBadResponse   atomic.Uint64
	clientReset                        atomic.Uint64
	proxyRejected                      atomic.Uint64
	bytesIn, bytesOut                  atomic.Uint64
	h2Conns, h2Streams, h2Floods       atomic.Uint64
	notHTTP                            atomic.Uint64
	h2BackStreams                      atomic.Uint64
	hookAnswers, hookPanics            atomic.Uint64
	hookTimeouts                       atomic.Uint64
}

// StatsSnapshot is a copy of a listener's counters.
type StatsSnapshot struct {
	Requests           uint64         // request heads parsed
	Responses          uint64         // backend responses relayed
	Answers            map[int]uint64 // answers the proxy made, by status
	ReusedBackend      uint64         // requests sent on a pooled connection
	NewBackend         uint64         // backend connections opened
	Retried            uint64         // requests retried on a fresh connection after a reused one failed
	Tunnels            uint64         // connections switched to a pipe by a 101 response (WebSocket)
	BackendReset       uint64         // backend connections that broke mid-exchange
	BackendBadResponse uint64         // malformed backend responses
	ClientReset        uint64         // client connections that broke mid-exchange
	ProxyRejected      uint64         // expected a PROXY header, got something else
	BytesIn, BytesOut  uint64         // sent to and received from backends (requests and responses, tunnels), counted as each exchange or tunnel ends
	H2Conns            uint64         // HTTP/2 connections
	H2Streams          uint64         // HTTP/2 request streams, counted when their connection ends
	H2Floods           uint64         // HTTP/2 connections ended with ENHANCE_YOUR_CALM
	NotHTTP            uint64         // H2C listeners: connections closed that spoke neither HTTP/2 nor HTTP/1.x
	H2BackendStreams   uint64         // requests sent to HTTP/2 backends (SetClusterHTTP2)
	HookAnswers        uint64         // requests a hook answered (Request.Respond)
	HookPanics         uint64         // hooks that panicked (their request got 500)
	HookTimeouts       uint64         // suspended requests whose deadline passed (504)
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	out := StatsSnapshot{
		Requests: s.requests.Load(), Responses: s.responses.Load(), Answers: map[int]uint64{},
		ReusedBackend: s.reusedBackend.Load(), NewBackend: s.newBackend.Load(), Retried: s.retried.Load(), Tunnels: s.tunnels.Load(),
		BackendReset: s.backendReset.Load(), BackendBadResponse: s.backendBadResponse.Load(),
		ClientReset: s.clientReset.Load(), ProxyRejected: s.proxyRejected.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
		NotHTTP: s.notHTTP.Load(), H2BackendStreams: s.h2BackStreams.Load(), H2Conns: s.h2Conns.Load(), H2Streams: s.h2Streams.Load(), H2Floods: s.h2Floods.Load(),
		HookAnswers: s.hookAnswers.Load(), HookPanics: s.hookPanics.Load(), HookTimeouts: s.hookTimeouts.Load(),
	}
	for i := range s.answers {
		if n := s.answers[i].Load(); n > 0 {
			out.Answers[answerStatus[i]] = n
		}
	}
	return out
}
