package tcpproxy

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// Listener makes a TCP proxy session of each accepted connection. One
// Listener may serve the listening sockets of several workers: its
// settings are read-only, and each worker counts apart (onWorker).
type Listener struct {
	cfg     Config
	workers session.PerWorker[onWorker]
}

// NewListener checks cfg and applies its defaults.
func NewListener(cfg Config) (*Listener, error) {
	if cfg.ConnectAttempts > session.MaxDialAttempts {
		cfg.ConnectAttempts = session.MaxDialAttempts
	}
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

// NewSession implements session.Listener.
func (l *Listener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	protocol.SetNoDelay(a.Fd, true)
	lw := l.onWorker(lp)
	s := &Session{
		Base:       session.Base{Cluster: l.cfg.Cluster, Peer: a.Peer},
		l:          l,
		lw:         lw,
		lp:         lp,
		began:      lp.Now(),
		front:      protocol.NewTCPSocket(a.Fd),
		frontToken: a.Token,
		local:      a.Local,
		last:       lp.Now(),
		state:      stateConnect,
	}
	s.dial = session.Dialer{Cluster: l.cfg.Cluster, Attempts: l.cfg.ConnectAttempts, ConnectTimeout: l.cfg.ConnectTimeout, OnFail: lw.onFail}
	lw.accepted.Add(1)
	lw.sessions.Add(1)
	if l.cfg.ExpectProxy {
		s.state = stateExpect
		s.frontTimer = lp.Schedule(a.Token, 0, l.cfg.HeaderTimeout)
		return s, nil
	}
	s.afterHeader()
	return s, nil
}

type state uint8

const (
	stateExpect     state = iota // reading the client's PROXY header
	stateRoute                   // Config.Route is looking at the first bytes
	stateConnect                 // about to dial a backend
	stateConnecting              // the dialer is connecting
	statePipe                    // relaying
	stateClosed
)

var stateNames = [...]string{"expect-proxy", "route", "connect", "connecting", "pipe", "closed"}

// headerRoom is kept free in the first buffer while a PROXY header or the
// routed bytes are read, so that a header to send can be put before them.
const headerRoom = 128

// Session is one proxied TCP connection.
type Session struct {
	session.Base
	l  *Listener
	lw *onWorker // the listener's part on this worker: counters
	lp *session.Loop

	state      state
	front      protocol.TCPSocket
	frontToken eventloop.Token
	frontReady protocol.Readiness // before the pipe; then the pipe keeps it
	dial       session.Dialer     // the backend connection
	local      netip.AddrPort

	head      *protocol.Buffer // client bytes read before the pipe (header, early payload)
	hdr       proxyproto.Header
	hdrLen    int  // Relay: the client's header, kept at the front of head
	clientFIN bool // the client closed its side before the pipe

	pipe       pipe.Pipe
	frontTimer timer.Handle
	backTimer  timer.Handle
	frontSeen  time.Time // last byte moved on the client side (pipe)
	backSeen   time.Time // last byte moved on the backend side (pipe)
	last       time.Time
	began      time.Time
	needBuffer bool
	counted    [2]uint64 // bytes to and from the backend reported to it so far
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
	case s.dial.Event(t, r): // connecting
	case s.dial.Owns(t) && s.state == statePipe:
		s.pipe.UpdateReadiness(pipe.Back, r)
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
		case stateRoute:
			res, again = s.route()
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

// readMore reads client bytes into head, keeping headerRoom free. It
// reports false when the pool has no buffer.
func (s *Session) readMore() (n int, r protocol.SocketResult, full, ok bool) {
	if s.head == nil {
		if s.head = s.lp.Pool().Get(); s.head == nil {
			return 0, protocol.Error, false, false // out of buffers: refuse, counted by the pool
		}
	}
	space := s.head.Space()
	if limit := s.head.Cap() - headerRoom - s.head.Len(); len(space) > limit {
		space = space[:max(limit, 0)]
	}
	n, r = s.front.Read(space)
	s.head.Fill(n)
	s.frontReady.Read(n, r)
	if r == protocol.Closed {
		s.clientFIN = true
	}
	return n, r, n == len(space), true
}

// readHeader reads until the expected PROXY header parses.
func (s *Session) readHeader() (session.Result, bool) {
	if !s.frontReady.Readable() {
		return session.Continue, false
	}
	_, r, full, ok := s.readMore()
	if !ok {
		return session.Close, false
	}
	hn, err := proxyproto.ParseInto(&s.hdr, s.head.Bytes(), proxyproto.ParseOptions{})
	switch {
	case err == nil:
		if s.hdr.Command == proxyproto.Proxy && s.hdr.Source.IsValid() {
			s.Source = s.hdr.Source
		}
		if s.l.cfg.SendProxy == Relay {
			s.hdrLen = hn
		} else {
			s.head.Consume(hn)
		}
		s.afterHeader()
		return session.Continue, true
	case errors.Is(err, proxyproto.ErrIncomplete) && r == protocol.WouldBlock && !full:
		// Still readable after a FIN or urgent data: read on.
		return session.Continue, s.frontReady.Readable()
	default:
		// Garbage, a header too long for the buffer, or a client that
		// closed before finishing it.
		s.lw.stats.proxyRejected.Add(1)
		s.lp.Logger().Debug("tcp: bad PROXY header", "peer", s.Peer, "err", err, "read", r)
		return session.Close, false
	}
}

// afterHeader moves on from the PROXY header, or from the accept.
// The front timer becomes the route timeout, or the front timeout.
func (s *Session) afterHeader() {
	s.state = stateConnect
	wait := s.l.cfg.FrontTimeout
	if s.l.cfg.Route != nil {
		s.state, wait = stateRoute, s.l.cfg.RouteTimeout
	}
	s.rearmFront(wait)
}

// rearmFront moves the front timer to d from now: one wheel operation
// while it is pending, a new timer once it has fired (or before the
// first).
func (s *Session) rearmFront(d time.Duration) {
	if !s.lp.Timers().Reset(s.frontTimer, d) {
		s.frontTimer = s.lp.Schedule(s.frontToken, 0, d)
	}
}

// route shows the client's first bytes to Config.Route until it decides.
// The bytes stay in head, to be replayed to the backend.
func (s *Session) route() (session.Result, bool) {
	final := s.clientFIN
	if !final {
		if !s.frontReady.Readable() {
			return session.Continue, false
		}
		n, r, full, ok := s.readMore()
		if !ok {
			return session.Close, false
		}
		final = full || r == protocol.Closed || r == protocol.Error
		if n == 0 && !final {
			return session.Continue, s.frontReady.Readable()
		}
	}
	return s.decide(final)
}

// decide asks Config.Route; final says no more bytes will come.
func (s *Session) decide(final bool) (session.Result, bool) {
	var data []byte
	if s.head != nil {
		data = s.head.Bytes()[s.hdrLen:]
	}
	client, _ := s.SessionAddress()
	d, err := s.l.cfg.Route(Peek{Data: data, Client: client, Local: s.destination(), Final: final})
	switch {
	case err == nil:
		if d.Cluster != "" {
			s.Cluster = d.Cluster
		}
		s.dial.Cluster = s.Cluster
		s.dial.Key, s.dial.UseKey = d.Key, d.UseKey
		s.lw.stats.routed.Add(1)
		s.rearmFront(s.l.cfg.FrontTimeout)
		s.state = stateConnect
		return session.Continue, true
	case errors.Is(err, ErrNeedMore) && !final:
		return session.Continue, s.frontReady.Readable()
	case errors.Is(err, ErrNeedMore):
		s.lw.stats.routeTimedOut.Add(1)
		s.lp.Logger().Debug("tcp: route undecided", "peer", s.Peer, "bytes", len(data))
		return session.Close, false
	default:
		s.lw.stats.routeRejected.Add(1)
		s.lp.Logger().Debug("tcp: route refused the connection", "peer", s.Peer, "err", err)
		return session.Close, false
	}
}

// destination is the address the client reached: the one its PROXY
// header gave, else the socket's (the listener may be on a wildcard
// address).
func (s *Session) destination() netip.AddrPort {
	if s.hdr.Command == proxyproto.Proxy && s.hdr.Destination.IsValid() {
		return s.hdr.Destination
	}
	if la, err := protocol.LocalAddr(s.front.Fd()); err == nil {
		return la
	}
	return s.local
}

// connect starts the dialer.
func (s *Session) connect(self session.ProxySession) (session.Result, bool) {
	if s.dial.Dial(s.lp, self) == session.DialFailed {
		return s.noBackend()
	}
	s.state = stateConnecting
	return session.Continue, true
}

func (s *Session) noBackend() (session.Result, bool) {
	s.lw.stats.noBackend.Add(1)
	s.lp.Logger().Debug("tcp: no backend left", "cluster", s.Cluster, "attempts", s.dial.Attempted(), "err", s.dial.Err())
	return session.Close, false
}

// connecting waits for the dialer to connect, to this backend or a later
// one.
func (s *Session) connecting() (session.Result, bool) {
	switch s.dial.Poll() {
	case session.DialConnected:
		s.dial.Backend().CountRequest() // a TCP session is one request to its backend
		s.backTimer = s.lp.Schedule(s.dial.Token(), 0, s.l.cfg.BackTimeout)
		if err := s.startPipe(); err != nil {
			return session.Close, false
		}
		return session.Continue, true
	case session.DialFailed:
		return s.noBackend()
	}
	return session.Continue, false
}

// startPipe hands the sockets, the readiness seen so far and the early
// bytes (with a PROXY header to send first) to the pipe.
func (s *Session) startPipe() error {
	s.pipe.Init(s.lp.Pool(), &s.front, s.dial.Socket())
	s.pipe.Splice(s.lp.Pipes())
	if s.clientFIN {
		// The FIN was read before the pipe: a read sees it again, and no
		// edge would announce it.
		s.frontReady.SetReadable()
	}
	s.pipe.MergeReadiness(pipe.Front, s.frontReady)
	s.pipe.MergeReadiness(pipe.Back, s.dial.TakeReadiness())
	s.frontReady.Reset()
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
		s.head, s.hdrLen = nil, 0
	}
	return nil
}

// prependHeader puts a PROXY header before the early payload in head.
func (s *Session) prependHeader(mode ProxyMode) error {
	src, _ := s.SessionAddress()
	// The destination the client's own header gave wins, as in HAProxy:
	// the backend hears where the client meant to go, not our address.
	h := proxyproto.NewTCP(src, s.destination())
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
		s.countBytes()
	}
	switch st {
	case pipe.Done:
		return session.Close
	case pipe.Failed:
		s.lw.stats.reset.Add(1)
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

// countBytes reports to the backend the bytes that crossed its
// connection since the last report, so that its counters move while a
// long connection lasts.
func (s *Session) countBytes() {
	in, out := s.pipe.Written(pipe.Back), s.pipe.Read(pipe.Back)
	s.dial.Backend().CountBytes(in-s.counted[0], out-s.counted[1])
	s.counted = [2]uint64{in, out}
}

// idleFor reports whether a side has been idle for its whole timeout;
// if not, it re-arms the side's timer for the time that is left.
func (s *Session) idleFor(t eventloop.Token, h *timer.Handle, seen time.Time, timeout time.Duration) bool {
	left := timeout - s.lp.Now().Sub(seen)
	if left <= 0 {
		return true
	}
	*h = s.lp.Schedule(t, 0, left)
	return false
}

// Timeout implements session.ProxySession.
func (s *Session) Timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	if s.state == statePipe {
		// A side the pipe is not waiting on (what it sent waits for the
		// other side to take it) is not idle: its timeout must not end
		// a transfer that the other side's pace holds up.
		if t == s.frontToken && !s.pipe.Awaits(pipe.Front) {
			s.frontSeen = s.lp.Now()
		} else if s.dial.Owns(t) && !s.pipe.Awaits(pipe.Back) {
			s.backSeen = s.lp.Now()
		}
	}
	switch {
	case t == s.frontToken && s.needBuffer:
		s.needBuffer = false
		s.frontTimer = s.lp.Schedule(t, 0, max(s.l.cfg.FrontTimeout-s.lp.Now().Sub(s.frontSeen), time.Millisecond))
		return s.relay()
	case t == s.frontToken && s.state == stateExpect:
		s.lw.stats.proxyTimedOut.Add(1)
		return session.Close
	case t == s.frontToken && s.state == stateRoute:
		res, _ := s.decide(true) // time is up: decide on what came
		if res == session.Close {
			return res
		}
		return session.Again
	case t == s.frontToken && s.state == statePipe && !s.idleFor(t, &s.frontTimer, s.frontSeen, s.l.cfg.FrontTimeout):
		return session.Continue
	case t == s.frontToken:
		s.lw.stats.frontTimeouts.Add(1)
		return session.Close
	case name == session.DialTimer:
		if s.dial.Timeout(t, name) == session.DialFailed {
			res, _ := s.noBackend()
			return res
		}
		return session.Continue
	case s.dial.Owns(t) && s.state == statePipe && !s.idleFor(t, &s.backTimer, s.backSeen, s.l.cfg.BackTimeout):
		return session.Continue
	case s.dial.Owns(t):
		s.lw.stats.backTimeouts.Add(1)
		return session.Close
	}
	return session.Continue
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
		s.lw.stats.bytesIn.Add(s.pipe.BytesIn())
		s.lw.stats.bytesOut.Add(s.pipe.BytesOut())
		s.countBytes()
		s.pipe.Release()
	}
	s.state = stateClosed
	s.lw.stats.sessions.Add(1)
	s.lw.sessions.Add(-1)
	s.lw.duration.Observe(s.lp.Now().Sub(s.began))
	s.lp.Timers().Cancel(s.backTimer)
	s.dial.Close()
	s.lp.Timers().Cancel(s.frontTimer)
	s.lp.Pool().Put(s.head)
	s.head = nil
	s.front.Close()
}

// PrintSession implements session.ProxySession.
func (s *Session) PrintSession(w io.Writer) {
	fmt.Fprintf(w, "tcp session %v -> %s: state %s", s.Peer, s.Cluster, stateNames[s.state])
	if b := s.dial.Backend(); b != nil {
		fmt.Fprintf(w, ", backend %v", b.Address)
	}
	if s.state == statePipe {
		fmt.Fprintf(w, ", in %d out %d, buffered %v", s.pipe.BytesIn(), s.pipe.BytesOut(), s.pipe.Buffered())
	}
}

var (
	_ session.Listener     = (*Listener)(nil)
	_ session.ProxySession = (*Session)(nil)
)
