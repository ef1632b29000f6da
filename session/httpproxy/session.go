package httpproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
)

// Listener makes an HTTP session of each accepted connection. One
// listener may serve on several workers: routes, clusters and counters
// are each worker's own (onWorker), and Stats sums the counters.
type Listener struct {
	cfg Config

	tlsConfig *tls.Config // HTTPS: shared by every connection
	tlsPool   *tlsconn.Pool

	workers session.PerWorker[onWorker] // every worker's part: routes, counters
}

// NewListener applies cfg's defaults. With cfg.TLS it is an HTTPS
// listener; cfg.TLS.Certs must be set.
func NewListener(cfg Config) *Listener {
	l := &Listener{cfg: cfg.withDefaults()}
	if t := l.cfg.TLS; t != nil {
		l.tlsConfig = t.serverConfig()
		l.tlsPool = t.pool()
	}
	return l
}

// Protocol implements session.Listener.
func (l *Listener) Protocol() session.Protocol {
	if l.tlsConfig != nil {
		return session.HTTPS
	}
	return session.HTTP
}

// AddFrontend adds a route to the listener: its requests matching f go
// to f's cluster (or are denied or redirected). Requests already routed
// are not affected. Routes belong to the listener, as in Sōzu: two
// listeners route apart. It is a command (a [session.Worker] or a whole
// [session.Proxy], whose every worker keeps its own copy of the routes):
// safe from any goroutine, before or after the listener is added.
func (l *Listener) AddFrontend(c session.Commands, f router.Frontend) error {
	return c.Exec(func(lp *session.Loop) error { return l.onWorker(lp).routes.Add(f) })
}

// ReplaceFrontend puts f in place of the listener's route f.ID (or adds
// it): a route sent to another cluster without a moment with neither.
func (l *Listener) ReplaceFrontend(c session.Commands, f router.Frontend) error {
	return c.Exec(func(lp *session.Loop) error { return l.onWorker(lp).routes.Replace(f) })
}

// RemoveFrontend removes the listener's route f.ID.
func (l *Listener) RemoveFrontend(c session.Commands, id string) error {
	return c.Exec(func(lp *session.Loop) error { return l.onWorker(lp).routes.Remove(id) })
}

// AnswersOverLimit implements session.OverLimitAnswerer: a client over
// the per-IP limit gets 429 with Retry-After rather than a silent close.
func (l *Listener) AnswersOverLimit() bool { return true }

// NewSession implements session.Listener.
func (l *Listener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	protocol.SetNoDelay(a.Fd, true)
	s := &Session{sock: tcpStream{protocol.NewTCPSocket(a.Fd)}}
	s.cycle = cycle{
		Peer:       a.Peer,
		last:       stampOf(lp.Now()),
		self:       s,
		lp:         lp,
		lw:         l.onWorker(lp),
		front:      &s.sock,
		frontToken: a.Token,
		localPort:  a.Local.Port(),
		overLimit:  a.OverLimit,
		frontSeen:  stampOf(lp.Now()),
	}
	s.lw.accepted.Add(1)
	s.lw.sessions.Add(1)
	if l.tlsConfig != nil {
		// The handshake is part of the first request: it has the request
		// timeout.
		s.startTLS(lp)
		s.frontTimer = lp.Schedule(a.Token, 0, l.cfg.RequestTimeout)
		return s, nil
	}
	s.frontTimer = lp.Schedule(a.Token, 0, l.cfg.FrontTimeout)
	return s, nil
}

// connState is what a client connection carries: HTTP/1.1 requests
// (whose cycle is phase), or a handshake, an HTTP/2 connection, a tunnel
// after a 101, or its last ciphertext.
type connState uint8

const (
	connH1        connState = iota // HTTP/1.1 requests, one after the other
	connHandshake                  // HTTPS: the TLS handshake, before the first request
	connH2                         // an HTTP/2 connection: its streams are sessions of their own
	connTunnel                     // after 101 Switching Protocols: a byte pipe
	connLinger                     // HTTPS: closing, the last ciphertext is being flushed
	connClosed
)

var connStateNames = [...]string{"h1", "handshake", "h2", "tunnel", "linger", "closed"}

// Session is one client connection: its socket, TLS, the PROXY header,
// and what it carries (connState): HTTP/1.1 requests one after the other
// (pipelined requests wait in the buffer for their turn), an HTTP/2
// connection whose streams are sessions of their own, or a tunnel.
type Session struct {
	cycle // the requests of an HTTP/1.1 connection

	sock       tcpStream // the client's socket; the cycle's front unless TLS is
	tls        tlsStream // HTTPS: sock's descriptor under TLS
	h2         *h2Front  // connH2: this connection speaks HTTP/2
	state      connState
	notified   bool // HTTPS: close_notify was queued
	proxyDone  bool // the expected PROXY header was read
	h1seen     bool // an HTTP/1.1 request came: no HTTP/2 preface can follow
	needBuffer bool // connTunnel: the pipe waits for a buffer
}

// UpdateReadiness implements session.ProxySession.
func (s *Session) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	if s.state == connTunnel {
		s.last = s.stamp()
		if t == s.frontToken {
			s.pipe.UpdateReadiness(pipe.Front, r)
		} else if s.back != nil && t == s.backToken {
			s.pipe.UpdateReadiness(pipe.Back, r)
		}
		return
	}
	s.cycle.UpdateReadiness(t, r)
}

// Ready implements session.ProxySession: it runs the connection's steps
// until none makes progress.
func (s *Session) Ready(self session.ProxySession) session.Result {
	res := s.run(self)
	if res == session.Close && s.closeGently() {
		return s.run(self)
	}
	return res
}

func (s *Session) run(self session.ProxySession) session.Result {
	for i := 0; i < 64; i++ {
		progress := s.flushTLS()
		var p bool
		var res session.Result
		switch s.state {
		case connHandshake:
			p, res = s.handshake()
		case connLinger:
			p, res = s.linger()
		case connH2:
			p, res = s.h2.run()
		case connTunnel:
			return s.relayTunnel()
		case connH1:
			p, res = s.step(self)
		default:
			return session.Close
		}
		progress = progress || p
		if res == session.Close {
			return session.Close
		}
		if !progress {
			return session.Continue
		}
	}
	return session.Continue
}

// beforeRequests reads what may come before a connection's first
// request: the PROXY header the listener expects, and on an h2c listener
// the HTTP/2 preface, which turns the connection into an HTTP/2 one. It
// reports done when readHead must return (p, res) instead of parsing.
func (s *Session) beforeRequests(progress bool) (p bool, res session.Result, done bool) {
	if s.lw.l.cfg.ExpectProxy && !s.proxyDone {
		var hdr proxyproto.Header
		hn, err := proxyproto.ParseInto(&hdr, s.fbuf.Bytes(), proxyproto.ParseOptions{})
		switch {
		case err == nil:
			s.useProxyHeader(&hdr)
			s.fbuf.Consume(hn)
			if s.fbuf.Empty() {
				s.releaseFront()
				return true, session.Continue, true
			}
		case errors.Is(err, proxyproto.ErrIncomplete) && !s.frontEOF:
			s.keep(s.fbuf.Bytes())
			s.releaseFront()
			return progress, session.Continue, true
		default:
			s.lw.stats.proxyRejected.Add(1)
			return false, session.Close, true
		}
	}
	b := s.fbuf.Bytes()
	if s.lw.l.cfg.H2C && s.tls.Socket == nil {
		// HTTP/2 with prior knowledge (RFC 9113 §3.3) starts with the
		// client preface, which no HTTP/1.1 request does.
		if prefaceStart(b) {
			if len(b) >= len(h2.ClientPreface) {
				p, res := s.startH2(b)
				return p, res, true
			}
			if !s.frontEOF {
				s.keep(b)
				s.releaseFront()
				return progress, session.Continue, true
			}
		}
	}
	return false, session.Continue, false
}

// h2cPreface reports whether the bytes an h2c listener's connection has
// sent so far, and no HTTP/1.1 request before them, are the start of the
// HTTP/2 client preface.
func (s *Session) h2cPreface() bool {
	if !s.lw.l.cfg.H2C || s.h1seen || s.tls.Socket != nil {
		return false
	}
	if s.fbuf != nil && !s.fbuf.Empty() {
		return prefaceStart(s.fbuf.Bytes())
	}
	return prefaceStart(s.held())
}

// prefaceStart reports whether b begins as the HTTP/2 client preface
// does (all of it, or as much of it as b holds).
func prefaceStart(b []byte) bool {
	n := min(len(b), len(h2.ClientPreface))
	return n > 0 && string(b[:n]) == h2.ClientPreface[:n]
}

// useProxyHeader takes the client address a PROXY header carries (a
// LOCAL one, a health check of the balancer, carries none).
func (s *Session) useProxyHeader(h *proxyproto.Header) {
	if h.Command == proxyproto.Proxy && h.Source.IsValid() {
		src := h.Source
		s.source = &src
	}
	s.proxyDone = true
}

// Timeout implements session.ProxySession. Timers fire at their first
// deadline and are pushed back by the activity seen since, so that no
// event pays for a timer update.
func (s *Session) Timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	res := s.timeout(t, name)
	if res == session.Close && s.closeGently() {
		return s.self.Ready(s.self)
	}
	return res
}

func (s *Session) timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	switch s.state {
	case connTunnel:
		return s.tunnelTimeout(t, s.lp.Now())
	case connHandshake:
		if t == s.frontToken {
			s.lw.tls.timeout.Add(1)
			return session.Close
		}
	case connLinger:
		return session.Close
	case connH2:
		if t == s.frontToken {
			return s.h2.timeout()
		}
		return session.Continue
	}
	return s.cycle.timeout(t, name)
}

// ShuttingDown implements session.ProxySession: idle connections end
// now; one in the middle of an exchange finishes it, and its response
// carries Connection: close.
func (s *Session) ShuttingDown() session.Result {
	switch s.state {
	case connHandshake:
		return session.Close
	case connLinger, connTunnel:
		return session.Continue
	case connH2:
		// GOAWAY, the streams in flight finish; run closes once drained.
		s.h2.shutdown()
		s.h2.kick()
		return session.Continue
	}
	return s.cycle.ShuttingDown()
}

// Close implements session.ProxySession.
func (s *Session) Close() {
	if s.state == connClosed {
		return
	}
	if s.state == connTunnel {
		s.lw.stats.bytesIn.Add(s.pipe.Written(pipe.Back))
		s.lw.stats.bytesOut.Add(s.pipe.Read(pipe.Back))
		if s.backend != nil {
			s.backend.CountBytes(s.pipe.Written(pipe.Back), s.pipe.Read(pipe.Back))
		}
		s.pipe.Release()
	}
	s.state = connClosed
	s.lw.sessions.Add(-1)
	s.cycle.close()
	if s.h2 != nil {
		s.h2.close()
	}
	s.front.Close() // TLS: the same descriptor, and a handshake in progress ends
}

// PrintSession implements session.ProxySession.
func (s *Session) PrintSession(w io.Writer) {
	if s.tls.Socket != nil {
		fmt.Fprintf(w, "https (tls %v, pending %v) ", s.tls.Conn().State(), s.tls.Pending())
	}
	fmt.Fprintf(w, "http session %v: %s, ", s.Peer, connStateNames[s.state])
	s.print(w)
}

func closeFD(fd int) {
	sock := protocol.NewTCPSocket(fd)
	sock.Close()
}

var (
	_ session.Listener     = (*Listener)(nil)
	_ session.ProxySession = (*Session)(nil)
)

// startTunnel turns the session into a pipe after a 101 head reached the
// client. Bytes either side sent early (the client's first frames after
// its request, the backend's after its head) go through first.
func (s *Session) startTunnel() session.Result {
	s.lw.stats.tunnels.Add(1)
	s.exchangeEnded(nil)
	s.pipe = new(pipe.Pipe)
	s.pipe.Init(s.lp.Pool(), s.front, &s.bsock)
	s.pipe.Splice(s.lp.Pipes())
	s.pipe.MergeReadiness(pipe.Front, s.fready)
	s.pipe.MergeReadiness(pipe.Back, s.bready)
	if s.fbuf != nil {
		if !s.headGone {
			s.fbuf.Consume(s.x.req.Len)
		}
		s.pipe.Adopt(pipe.Front, s.fbuf)
	}
	if s.bbuf != nil {
		s.pipe.Adopt(pipe.Back, s.bbuf)
	}
	s.fbuf, s.bbuf = nil, nil
	s.freeExchange()
	s.state = connTunnel
	s.frontSeen = s.stamp()
	s.backSeen = s.frontSeen
	s.lp.Timers().Cancel(s.frontTimer)
	s.lp.Timers().Cancel(s.backTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.TunnelTimeout)
	s.backTimer = s.lp.Schedule(s.backToken, 0, s.lw.l.cfg.TunnelTimeout)
	return s.relayTunnel()
}

// relayTunnel runs the pipe and notes each side's activity.
func (s *Session) relayTunnel() session.Result {
	st := s.pipe.Ready()
	if s.pipe.Moved(pipe.Front) {
		s.frontSeen = s.stamp()
	}
	if s.pipe.Moved(pipe.Back) {
		s.backSeen = s.stamp()
	}
	switch st {
	case pipe.Done, pipe.Failed:
		return session.Close
	case pipe.NeedBuffer:
		if !s.needBuffer {
			s.needBuffer = true
			s.lp.Timers().Cancel(s.frontTimer)
			s.frontTimer = s.lp.Schedule(s.frontToken, 0, 10*time.Millisecond)
		}
	}
	return session.Continue
}

// tunnelTimeout closes a tunnel idle for TunnelTimeout on either side.
func (s *Session) tunnelTimeout(t eventloop.Token, now time.Time) session.Result {
	if t == s.frontToken && s.needBuffer {
		s.needBuffer = false
		s.frontTimer = s.lp.Schedule(t, 0, max(s.lw.l.cfg.TunnelTimeout-s.frontSeen.age(now), time.Millisecond))
		return s.relayTunnel()
	}
	// A side the pipe is not waiting on (its bytes wait for the other
	// side) is not idle.
	if t == s.frontToken && !s.pipe.Awaits(pipe.Front) {
		s.frontSeen = stampOf(now)
	} else if t != s.frontToken && !s.pipe.Awaits(pipe.Back) {
		s.backSeen = stampOf(now)
	}
	seen, h := s.frontSeen, &s.frontTimer
	if t != s.frontToken {
		seen, h = s.backSeen, &s.backTimer
	}
	if left := s.lw.l.cfg.TunnelTimeout - seen.age(now); left > 0 {
		*h = s.lp.Schedule(t, 0, left)
		return session.Continue
	}
	return session.Close
}
