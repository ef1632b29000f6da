package httpproxy

import (
	"crypto/tls"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
	"github.com/sluiceproxy/sluice/session"
)

// TLS makes a listener an HTTPS one: each connection is a TLS handshake
// (run off the loop, see protocol/tlsconn), then HTTP/1.1 over it.
type TLS struct {
	// Certs picks each handshake's certificate by SNI (exact name, then
	// wildcard, then the store's default). Required. Certificates added,
	// replaced or removed in it serve the handshakes that start after
	// the change; established connections keep theirs.
	Certs *certs.Store
	// Config, when set, supplies the rest of the server configuration:
	// cipher suites, curves, client authentication (ClientAuth,
	// ClientCAs), session tickets. It is cloned; its Certificates,
	// GetCertificate and NextProtos are replaced, and MinVersion is raised
	// to TLS 1.2 when lower. Default: crypto/tls's defaults, TLS 1.2 and
	// 1.3, with TLS 1.3 session resumption by tickets.
	Config *tls.Config
	// Pool runs the handshakes; share one between listeners to bound them
	// all together. Default: one per listener of 64 goroutines per CPU
	// and a queue of 1,024. A handshake that finds it full fails at once
	// (counted as pool-full).
	Pool *tlsconn.Pool
	// DisableHTTP2 offers only http/1.1 by ALPN. Default: h2 first, then
	// http/1.1; an h2 connection is served as [Config.HTTP2] says.
	DisableHTTP2 bool
	// DynamicRecordSizing keeps crypto/tls's small first records (about
	// one TCP segment each for the first 128 KiB after a handshake), which
	// lets a browser start on a page sooner at the cost of more records.
	// Default off: full 16 KiB records, as HAProxy and nginx send.
	DynamicRecordSizing bool
}

// TLSStats counts a listener's handshakes.
type TLSStats struct {
	Handshakes uint64 // completed
	Resumed    uint64 // of which resumed a session (TLS 1.3 ticket or TLS 1.2 session)
	// Failures by reason: not a TLS ClientHello (garbage), no room in the
	// handshake pool, the request timeout passed, the client closed, or
	// crypto/tls refused (alert sent: bad version, no shared cipher, bad
	// certificate...).
	NotTLS, PoolFull, Timeout, ClientClosed, Refused uint64
	// HandshakeTime is the total time from a ClientHello's first byte to
	// the end of its handshake, over Handshakes; HandshakeMax the longest.
	HandshakeTime, HandshakeMax time.Duration
}

// tlsStats is a listener's handshake counters on one worker, written by
// its loop only. The histogram holds the completed handshakes: their
// count and their total time too.
type tlsStats struct {
	resumed                                    atomic.Uint64
	notTLS, poolFull, timeout, closed, refused atomic.Uint64
	maxNanos                                   atomic.Int64
	duration                                   metrics.Histogram
}

func (s *tlsStats) snapshot() TLSStats {
	h := s.duration.Load()
	return TLSStats{
		Handshakes: h.Count(), Resumed: s.resumed.Load(), NotTLS: s.notTLS.Load(), PoolFull: s.poolFull.Load(),
		Timeout: s.timeout.Load(), ClientClosed: s.closed.Load(), Refused: s.refused.Load(),
		HandshakeTime: h.Sum, HandshakeMax: time.Duration(s.maxNanos.Load()),
	}
}

func (s *tlsStats) done(d time.Duration) {
	s.duration.Observe(d)
	if int64(d) > s.maxNanos.Load() { // one writer: the loop
		s.maxNanos.Store(int64(d))
	}
}

func (t *TLSStats) add(o TLSStats) {
	t.Handshakes += o.Handshakes
	t.Resumed += o.Resumed
	t.NotTLS += o.NotTLS
	t.PoolFull += o.PoolFull
	t.Timeout += o.Timeout
	t.ClientClosed += o.ClientClosed
	t.Refused += o.Refused
	t.HandshakeTime += o.HandshakeTime
	t.HandshakeMax = max(t.HandshakeMax, o.HandshakeMax)
}

// serverConfig builds the one tls.Config every connection of the
// listener shares (session ticket keys live in it, so resumption works
// across connections and workers).
func (t *TLS) serverConfig() *tls.Config {
	var cfg *tls.Config
	if t.Config != nil {
		cfg = t.Config.Clone()
	} else {
		cfg = &tls.Config{}
	}
	cfg.Certificates = nil
	cfg.GetCertificate = t.Certs.GetCertificate
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	if t.DisableHTTP2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	cfg.DynamicRecordSizingDisabled = !t.DynamicRecordSizing
	return cfg
}

func (t *TLS) pool() *tlsconn.Pool {
	if t.Pool != nil {
		return t.Pool
	}
	return tlsconn.NewPool(64*runtime.GOMAXPROCS(0), 1024)
}

// startTLS prepares the handshake of a new connection.
func (s *Session) startTLS(lp *session.Loop) {
	st := s.lw.st
	if st.scratch == nil {
		lp.SpareP() // the handshakes' goroutines run at once
		st.scratch = tlsconn.NewScratch()
	}
	s.tls = tlsStream{tlsconn.NewSocket(s.sock.Fd(), s.lw.l.tlsConfig, st.scratch, func() { lp.Wake(s.frontToken, s) })}
	s.front, s.secure = &s.tls, true
	s.state = connHandshake
}

// handshake drives the TLS handshake; when it completes, the session
// reads requests over it.
func (s *Session) handshake() (bool, session.Result) {
	if s.lw.l.cfg.ExpectProxy && !s.proxyDone {
		if progress, res, ok := s.readProxyBeforeTLS(); !ok {
			return progress, res
		}
	}
	switch s.tls.Handshake(s.lw.l.tlsPool, s.lw.l.cfg.RequestTimeout, &s.fready) {
	case tlsconn.Established:
		if start := s.tls.Started(); !start.IsZero() {
			s.lw.tls.done(time.Since(start))
		}
		cs := s.tls.Conn().TLS().ConnectionState()
		if cs.DidResume {
			s.lw.tls.resumed.Add(1)
		}
		if cs.NegotiatedProtocol == "h2" {
			return s.startH2(nil)
		}
		s.state, s.phase = connH1, phaseIdle
		s.frontSeen = s.stamp()
		s.lp.Timers().Cancel(s.frontTimer)
		s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.FrontTimeout)
		return true, session.Continue
	case tlsconn.Failed:
		err := s.tls.Conn().Err()
		switch {
		case errors.Is(err, tlsconn.ErrNotClientHello):
			s.lw.tls.notTLS.Add(1)
		case errors.Is(err, tlsconn.ErrPoolFull):
			s.lw.tls.poolFull.Add(1)
		case errors.Is(err, tlsconn.ErrPeerGone), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			s.lw.tls.closed.Add(1)
		case isTimeout(err):
			s.lw.tls.timeout.Add(1)
		default:
			s.lw.tls.refused.Add(1)
		}
		return false, session.Close
	}
	return false, session.Continue
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// readProxyBeforeTLS reads the PROXY header a load balancer in front
// sends before the ClientHello; the bytes after it belong to TLS. ok
// means the header is done and the handshake may go on.
func (s *Session) readProxyBeforeTLS() (progress bool, res session.Result, ok bool) {
	const maxProxyHeader = 4 << 10 // far beyond what HAProxy and the cloud balancers send
	for s.fready.Readable() {
		var buf [1024]byte
		n, r := s.sock.Read(buf[:])
		s.fready.Read(n, r)
		s.hold(buf[:n])
		progress = progress || n > 0
		var hdr proxyproto.Header
		hn, err := proxyproto.ParseInto(&hdr, s.held(), proxyproto.ParseOptions{})
		switch {
		case err == nil:
			s.useProxyHeader(&hdr)
			s.tls.Conn().Feed(s.held()[hn:])
			s.partial = nil
			return true, session.Continue, true
		case errors.Is(err, proxyproto.ErrIncomplete) && r != protocol.Closed && r != protocol.Error && len(s.held()) < maxProxyHeader:
			continue
		default:
			s.lw.stats.proxyRejected.Add(1)
			return false, session.Close, false
		}
	}
	return progress, session.Continue, false
}

// flushTLS sends ciphertext a previous write left behind, on a writable
// edge: no new write would.
func (s *Session) flushTLS() bool {
	if s.tls.Socket == nil || s.state == connHandshake || !s.fready.Writable() || !s.tls.Pending() {
		return false
	}
	r := s.tls.Flush()
	s.fready.Wrote(r)
	return r == protocol.Continue
}

// lingerTime bounds how long a closing connection drains what the
// client still sends once everything of ours is out.
const lingerTime = time.Second

// closeGently ends a connection the session is done with, without
// losing what it wrote: it shuts our side (close_notify, then the FIN
// once flushed, over TLS; the FIN over TCP) and drains what the client
// still sends until it closes, so that unread bytes (pipelined requests
// after a Connection: close, a body not read) do not turn our close into
// a reset, which makes the kernel drop what it has not sent yet: the
// last response or frames. It reports true when the session must stay
// for that (connLinger).
func (s *Session) closeGently() bool {
	switch {
	case s.state == connHandshake, s.state == connLinger, s.state == connClosed,
		s.state == connTunnel, // the pipe flushes and relays FINs itself
		s.h2 != nil && s.h2.broken:
		return false
	}
	if s.tls.Socket != nil {
		if !s.notified {
			s.notified = true
			s.tls.Socket.CloseWrite() // close_notify
		}
	} else {
		s.sock.CloseWrite()
	}
	s.state = connLinger
	wait := lingerTime
	if s.tls.Socket != nil && s.tls.Pending() {
		wait = s.lw.l.cfg.FrontTimeout // a slow client takes the last ciphertext
	}
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, wait)
	return true
}

// linger flushes the last ciphertext of a closing connection, then drops
// what the client sends until it closes (or the timer closes it).
func (s *Session) linger() (bool, session.Result) {
	if s.tls.Socket != nil && s.tls.Pending() {
		if !s.fready.Writable() {
			return false, session.Continue
		}
		switch r := s.tls.Flush(); r {
		case protocol.WouldBlock:
			s.fready.Wrote(r)
			return false, session.Continue
		case protocol.Continue:
			s.lp.Timers().Cancel(s.frontTimer)
			s.frontTimer = s.lp.Schedule(s.frontToken, 0, lingerTime)
		default:
			return false, session.Close
		}
	}
	buf := frameScratch(s.lp)
	for s.fready.Readable() {
		n, r := s.sock.Read(buf) // raw bytes, dropped unread
		s.fready.Read(n, r)
		if r == protocol.Closed || r == protocol.Error {
			return false, session.Close
		}
		if n == 0 {
			break
		}
	}
	return false, session.Continue
}
