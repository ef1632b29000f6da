package tcpproxy

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// Listener makes a TCP proxy session of each accepted connection. One
// Listener may serve the listening sockets of several workers: its
// settings are read-only and its counters atomic.
type Listener struct {
	cfg   Config
	stats Stats
}

// NewListener checks cfg and applies its defaults.
func NewListener(cfg Config) (*Listener, error) {
	if cfg.SendProxy == Relay && !cfg.ExpectProxy {
		return nil, ErrRelayNeedsExpect
	}
	if cfg.SendProxy > Relay {
		return nil, fmt.Errorf("tcpproxy: unknown SendProxy mode %d", cfg.SendProxy)
	}
	return &Listener{cfg: cfg.withDefaults()}, nil
}

// Protocol implements session.Listener.
func (l *Listener) Protocol() session.Protocol { return session.TCP }

// Stats returns the listener's counters.
func (l *Listener) Stats() StatsSnapshot { return l.stats.Snapshot() }

// NewSession implements session.Listener.
func (l *Listener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	protocol.SetNoDelay(a.Fd, true)
	s := &Session{
		Base:       session.Base{Cluster: l.cfg.Cluster, Peer: a.Peer},
		l:          l,
		lp:         lp,
		front:      protocol.NewTCPSocket(a.Fd),
		frontToken: a.Token,
		local:      a.Local,
		last:       lp.Now(),
		state:      stateConnect,
	}
	wait := l.cfg.FrontTimeout
	if l.cfg.ExpectProxy {
		s.state, wait = stateExpect, l.cfg.HeaderTimeout
	}
	s.frontTimer = lp.Timers().Schedule(a.Token, wait)
	return s, nil
}

type state uint8

const (
	stateExpect     state = iota // reading the client's PROXY header
	stateConnect                 // about to pick a backend and connect
	stateConnecting              // waiting for the connect to finish
	statePipe                    // relaying
	stateClosed
)

var stateNames = [...]string{"expect-proxy", "connect", "connecting", "pipe", "closed"}

// maxAttempts bounds Config.ConnectAttempts so the tried list needs no
// allocation.
const maxAttempts = 16

// headerRoom is kept free in the first buffer while a PROXY header is
// read, so that a header to send can be put before the early payload.
const headerRoom = 128

// Session is one proxied TCP connection.
type Session struct {
	session.Base
	l  *Listener
	lp *session.Loop

	state      state
	front      protocol.TCPSocket
	back       protocol.TCPSocket
	frontToken eventloop.Token
	backToken  eventloop.Token
	hasBack    bool
	frontReady protocol.Readiness // before the pipe; then the pipe keeps it
	backReady  protocol.Readiness
	local      netip.AddrPort

	head      *protocol.Buffer // client bytes read before the pipe (header, early payload)
	hdr       proxyproto.Header
	rawHeader []byte // Relay: the client's header as received (a view into head)

	pipe       pipe.Pipe
	backend    *backend.Backend
	tried      [maxAttempts]*backend.Backend
	attempts   int
	frontTimer timer.Handle
	backTimer  timer.Handle
	frontSeen  time.Time // last byte moved on the client side (pipe)
	backSeen   time.Time // last byte moved on the backend side (pipe)
	last       time.Time
	needBuffer bool
}

// Protocol implements session.ProxySession.
func (s *Session) Protocol() session.Protocol { return session.TCP }

// FrontendToken implements session.ProxySession.
func (s *Session) FrontendToken() eventloop.Token { return s.frontToken }

// LastEvent implements session.ProxySession.
func (s *Session) LastEvent() time.Time { return s.last }

// UpdateReadiness implements session.ProxySession.
func (s *Session) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	s.last = s.lp.Now()
	switch {
	case t == s.frontToken && s.state == statePipe:
		s.pipe.UpdateReadiness(pipe.Front, r)
	case t == s.frontToken:
		s.frontReady.Update(r)
	case s.hasBack && t == s.backToken && s.state == statePipe:
		s.pipe.UpdateReadiness(pipe.Back, r)
	case s.hasBack && t == s.backToken:
		s.backReady.Update(r)
	}
}

// Ready implements session.ProxySession.
func (s *Session) Ready(self session.ProxySession) session.Result {
	for {
		var res session.Result
		var again bool
		switch s.state {
		case stateExpect:
			res, again = s.readHeader()
		case stateConnect:
			res, again = s.connect(self)
		case stateConnecting:
			res, again = s.connecting()
		case statePipe:
			return s.relay()
		default:
			return session.Close
		}
		if !again {
			return res
		}
	}
}

// readHeader reads until the expected PROXY header parses.
func (s *Session) readHeader() (session.Result, bool) {
	if !s.frontReady.Readable() {
		return session.Continue, false
	}
	if s.head == nil {
		if s.head = s.lp.Pool().Get(); s.head == nil {
			return session.Close, false // out of buffers: refuse, counted by the pool
		}
	}
	space := s.head.Space()
	if limit := s.head.Cap() - headerRoom - s.head.Len(); len(space) > limit {
		space = space[:max(limit, 0)]
	}
	n, r := s.front.Read(space)
	s.head.Fill(n)
	s.frontReady.Read(n, r)
	hn, err := proxyproto.ParseInto(&s.hdr, s.head.Bytes(), proxyproto.ParseOptions{})
	switch {
	case err == nil:
		if s.hdr.Command == proxyproto.Proxy && s.hdr.Source.IsValid() {
			s.Source = s.hdr.Source
		}
		if s.l.cfg.SendProxy == Relay {
			s.rawHeader = s.head.Bytes()[:hn]
		} else {
			s.head.Consume(hn)
		}
		s.lp.Timers().Reset(s.frontTimer, s.l.cfg.FrontTimeout)
		s.state = stateConnect
		return session.Continue, true
	case errors.Is(err, proxyproto.ErrIncomplete) && r == protocol.WouldBlock && len(space) > n:
		// Still readable after a FIN or urgent data: read on.
		return session.Continue, s.frontReady.Readable()
	default:
		// Garbage, a header too long for the buffer, or a client that
		// closed before finishing it.
		s.l.stats.proxyRejected.Add(1)
		s.lp.Logger().Debug("tcp: bad PROXY header", "peer", s.Peer, "err", err, "read", r)
		return session.Close, false
	}
}

// connect picks a backend not tried yet and starts a non-blocking
// connect to it.
func (s *Session) connect(self session.ProxySession) (session.Result, bool) {
	cluster := s.lp.Clusters().Cluster(s.l.cfg.Cluster)
	attempts := min(s.l.cfg.ConnectAttempts, maxAttempts)
	for s.attempts < attempts {
		if cluster == nil {
			break
		}
		b, err := cluster.Pick(s.lp.Now(), s.tried[:s.attempts])
		if err != nil {
			break
		}
		s.tried[s.attempts] = b
		s.attempts++
		fd, err := protocol.Connect(b.Address)
		if err != nil {
			b.ConnectStarted()
			b.ConnectFailed(s.lp.Now())
			s.l.stats.connectFailed.Add(1)
			continue
		}
		t, err := s.lp.Register(fd, self)
		if err != nil {
			closeFD(fd)
			return session.Close, false
		}
		protocol.SetNoDelay(fd, true)
		b.ConnectStarted()
		s.backend = b
		s.back = protocol.NewTCPSocket(fd)
		s.backToken, s.hasBack = t, true
		s.backReady.Reset()
		s.backTimer = s.lp.Timers().Schedule(t, s.l.cfg.ConnectTimeout)
		s.state = stateConnecting
		return session.Continue, true
	}
	s.l.stats.noBackend.Add(1)
	s.lp.Logger().Debug("tcp: no backend left", "cluster", s.l.cfg.Cluster, "attempts", s.attempts)
	return session.Close, false
}

// connecting finishes a connect once the socket says something.
func (s *Session) connecting() (session.Result, bool) {
	if !s.backReady.Writable() {
		return session.Continue, false
	}
	if err := protocol.ConnectResult(s.back.Fd()); err != nil {
		s.l.stats.connectFailed.Add(1)
		s.backend.ConnectFailed(s.lp.Now())
		s.lp.Logger().Debug("tcp: backend connect failed", "backend", s.backend.Address, "err", err)
		s.dropBack()
		s.state = stateConnect
		return session.Continue, true
	}
	s.backend.ConnectSucceeded(s.lp.Now())
	s.lp.Timers().Reset(s.backTimer, s.l.cfg.BackTimeout)
	if err := s.startPipe(); err != nil {
		return session.Close, false
	}
	return session.Continue, true
}

// startPipe hands the sockets, the readiness seen so far and the early
// bytes (with a PROXY header to send first) to the pipe.
func (s *Session) startPipe() error {
	s.pipe.Init(s.lp.Pool(), &s.front, &s.back)
	s.pipe.MergeReadiness(pipe.Front, s.frontReady)
	s.pipe.MergeReadiness(pipe.Back, s.backReady)
	s.frontReady.Reset()
	s.backReady.Reset()
	s.frontSeen, s.backSeen = s.lp.Now(), s.lp.Now()
	s.state = statePipe
	if mode := s.l.cfg.SendProxy; mode == SendV1 || mode == SendV2 {
		if s.head == nil {
			if s.head = s.lp.Pool().Get(); s.head == nil {
				return protocol.ErrPoolExhausted
			}
		}
		if err := s.prependHeader(mode); err != nil {
			s.lp.Logger().Debug("tcp: cannot build PROXY header", "err", err)
			return err
		}
	}
	if s.head != nil {
		s.pipe.Adopt(pipe.Front, s.head)
		s.head, s.rawHeader = nil, nil
	}
	return nil
}

// prependHeader puts a PROXY header before the early payload in head.
func (s *Session) prependHeader(mode ProxyMode) error {
	src, _ := s.SessionAddress()
	dst := s.local
	if la, err := protocol.LocalAddr(s.front.Fd()); err == nil {
		dst = la // the listener may be on a wildcard address
	}
	h := proxyproto.NewTCP(src, dst)
	var tmp [headerRoom]byte
	var out []byte
	var err error
	if mode == SendV1 {
		out, err = h.AppendV1(tmp[:0])
	} else {
		out, err = h.AppendV2(tmp[:0])
	}
	if err != nil {
		return err
	}
	if !s.head.Prepend(out) {
		return protocol.ErrPoolExhausted
	}
	return nil
}

// relay runs the pipe and notes when each side last moved a byte. The
// inactivity timers are not reset here, which would cost a wheel update
// and a clock read per event: they fire at their first deadline and are
// pushed back then by the time since the side's last activity (see
// Timeout).
func (s *Session) relay() session.Result {
	st := s.pipe.Ready()
	if s.pipe.Moved(pipe.Front) {
		s.frontSeen = s.lp.Now()
	}
	if s.pipe.Moved(pipe.Back) {
		s.backSeen = s.lp.Now()
	}
	switch st {
	case pipe.Done:
		return session.Close
	case pipe.Failed:
		s.l.stats.reset.Add(1)
		return session.Close
	case pipe.NeedBuffer:
		// Nothing raises an edge for a buffer coming back: look again
		// shortly (the front timer doubles as the retry timer).
		if !s.needBuffer {
			s.needBuffer = true
			s.lp.Timers().Reset(s.frontTimer, 10*time.Millisecond)
		}
	}
	return session.Continue
}

// idleFor reports whether a side has been idle for its whole timeout;
// if not, it re-arms the side's timer for the time that is left.
func (s *Session) idleFor(t eventloop.Token, h *timer.Handle, seen time.Time, timeout time.Duration) bool {
	left := timeout - s.lp.Now().Sub(seen)
	if left <= 0 {
		return true
	}
	*h = s.lp.Timers().Schedule(t, left)
	return false
}

// Timeout implements session.ProxySession.
func (s *Session) Timeout(t eventloop.Token) session.Result {
	switch {
	case t == s.frontToken && s.needBuffer:
		s.needBuffer = false
		s.frontTimer = s.lp.Timers().Schedule(t, max(s.l.cfg.FrontTimeout-s.lp.Now().Sub(s.frontSeen), time.Millisecond))
		return s.relay()
	case t == s.frontToken && s.state == stateExpect:
		s.l.stats.proxyTimedOut.Add(1)
		return session.Close
	case t == s.frontToken && s.state == statePipe && !s.idleFor(t, &s.frontTimer, s.frontSeen, s.l.cfg.FrontTimeout):
		return session.Continue
	case t == s.frontToken:
		s.l.stats.frontTimeouts.Add(1)
		return session.Close
	case s.hasBack && t == s.backToken && s.state == stateConnecting:
		s.l.stats.connectTimedOut.Add(1)
		s.backend.ConnectFailed(s.lp.Now())
		s.dropBack()
		s.state = stateConnect
		return s.Ready(s) // the worker does not know self; the TCP session is not embedded
	case s.hasBack && t == s.backToken && s.state == statePipe && !s.idleFor(t, &s.backTimer, s.backSeen, s.l.cfg.BackTimeout):
		return session.Continue
	case s.hasBack && t == s.backToken:
		s.l.stats.backTimeouts.Add(1)
		return session.Close
	}
	return session.Continue
}

// dropBack abandons the current backend connection.
func (s *Session) dropBack() {
	if !s.hasBack {
		return
	}
	s.lp.Timers().Cancel(s.backTimer)
	s.lp.Release(s.backToken, s.back.Fd())
	s.back.Close()
	s.hasBack = false
	s.backend = nil
}

// ShuttingDown implements session.ProxySession: a session that has not
// reached its backend yet ends now; a connected one is left to finish
// (a TCP stream has no message boundary at which to cut it).
func (s *Session) ShuttingDown() session.Result {
	if s.state != statePipe {
		return session.Close
	}
	return session.Continue
}

// Close implements session.ProxySession.
func (s *Session) Close() {
	if s.state == stateClosed {
		return
	}
	if s.state == statePipe {
		s.l.stats.bytesIn.Add(s.pipe.BytesIn())
		s.l.stats.bytesOut.Add(s.pipe.BytesOut())
		s.pipe.Release()
	}
	s.state = stateClosed
	s.l.stats.sessions.Add(1)
	if s.backend != nil {
		s.backend.Released()
		s.backend = nil
	}
	s.dropBack()
	s.lp.Timers().Cancel(s.frontTimer)
	s.lp.Pool().Put(s.head)
	s.head = nil
	s.lp.Release(s.frontToken, s.front.Fd())
	s.front.Close()
}

// PrintSession implements session.ProxySession.
func (s *Session) PrintSession(w io.Writer) {
	fmt.Fprintf(w, "tcp session %v -> %s: state %s", s.Peer, s.l.cfg.Cluster, stateNames[s.state])
	if s.backend != nil {
		fmt.Fprintf(w, ", backend %v", s.backend.Address)
	}
	if s.state == statePipe {
		fmt.Fprintf(w, ", in %d out %d, buffered %v", s.pipe.BytesIn(), s.pipe.BytesOut(), s.pipe.Buffered())
	}
}

func closeFD(fd int) {
	sock := protocol.NewTCPSocket(fd)
	sock.Close()
}

var (
	_ session.Listener     = (*Listener)(nil)
	_ session.ProxySession = (*Session)(nil)
)
