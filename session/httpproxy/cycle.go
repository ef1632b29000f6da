package httpproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// phase is where a cycle is in its current request.
type phase uint8

const (
	phaseIdle      phase = iota // between requests: no buffer, keep-alive timeout
	phaseHead                   // reading a request head: request timeout
	phaseSuspended              // a hook suspended the request: waiting for its resume or deadline
	phaseConnect                // the head is in; a backend must be found
	phaseExchange               // the request goes to the backend, the response comes back
	phaseAnswer                 // writing an answer of the proxy's own, then closing
)

var phaseNames = [...]string{"idle", "head", "suspended", "connect", "exchange", "answer"}

// maxAttempts bounds Config.ConnectAttempts.
const maxAttempts = 8

// cycle carries requests from one front stream (a client connection's
// socket, or one HTTP/2 stream) to backends and their responses back, one
// request at a time: a request's phases, its backend connection and its
// timers. It is the part of an HTTP session that does not depend on how
// the client's bytes arrive.
type cycle struct {
	Peer   netip.AddrPort       // the client as the kernel saw it
	source *netip.AddrPort      // the client a PROXY header named, if any (most connections have none: a pointer)
	last   stamp                // the last event
	self   session.ProxySession // the session this cycle is part of: a *Session or an HTTP/2 stream's
	lp     *session.Loop
	lw     *onWorker // the listener's part on this worker: its settings (lw.l), routes, counters, the worker's state (lw.st)

	front   frontStream      // where the request comes from and the response goes
	fbuf    *protocol.Buffer // request bytes: the head, then body bytes
	partial *[]byte          // an incomplete head, kept without a pool buffer (most connections have none: a pointer)

	// The request and the response being exchanged, and the backend
	// side, borrowed from the worker while a request is in progress (the
	// backend side also while a tunnel lives): an idle client connection
	// holds neither.
	x *exchange
	*backSide

	frontTimer timer.Handle
	frontSeen  stamp // the client's last progress

	// Small fields together: the struct is part of every connection.
	frontToken  eventloop.Token
	localPort   uint16 // the port the client reached (X-Forwarded-Port)
	fready      protocol.Readiness
	phase       phase
	secure      bool // the client came over TLS (HSTS applies)
	frontEOF    bool
	overLimit   bool // the client is over the per-IP limit: its request gets 429
	closeAfter  bool // the client connection ends after this response
	headSent    bool
	headParsed  bool // the current request's head is parsed and its body framing set
	headGone    bool // the request head was consumed from fbuf (no retry after that)
	reqDone     bool // the whole request reached the backend
	reused      bool // the backend connection came from the idle pool (or is a stream)
	retried     bool // the request is on its fresh-connection retry
	respHead    bool // the response head is parsed
	respBodyEOF bool // the response ended with the backend's close
	backNoReuse bool // the backend connection cannot carry another request
	respSent    bool // a byte of the response reached the client
	tunnel      bool // the response switches protocols: a pipe follows its head
	reqData     bool // the back stream took the request head as fields: it gets the body's content
	respData    bool // the front stream took the response head as fields: it gets the body's content
}

// backSide is what a cycle holds of its request's route and backend:
// the connection, its timer and readiness, the response buffer.
type backSide struct {
	route   *router.Frontend
	back    backStream // a TCP connection (bsock) or a stream of an HTTP/2 one
	bsock   tcpStream
	backend *backend.Backend
	cluster *backend.Cluster
	// dial picks, connects and accounts the backend connection, from
	// the connect until the connection ends (nil otherwise).
	dial      *session.Dialer
	bbuf      *protocol.Buffer // response bytes
	backTimer timer.Handle
	backSeen  stamp
	backToken eventloop.Token
	bready    protocol.Readiness
	pipe      *pipe.Pipe // a tunnel's relay (connTunnel), which keeps the backend side
}

// begin borrows what a request needs: the exchange and the backend side.
func (s *cycle) begin() {
	if s.x == nil {
		s.x = s.lw.st.getExchange(s.lw.l.cfg.Limits)
	}
	if s.backSide == nil {
		s.backSide = s.lw.st.getSide()
	}
}

// endSide gives the backend side back once nothing holds it: no
// backend connection, connect or response buffer.
func (s *cycle) endSide() {
	b := s.backSide
	if b == nil || b.back != nil || b.dial != nil || b.bbuf != nil {
		return
	}
	s.lp.Timers().Cancel(b.backTimer)
	s.backSide = nil
	s.lw.st.putSide(b)
}

// cycleOwner is a session with a cycle: a *Session or an HTTP/2
// stream's.
type cycleOwner interface{ requests() *cycle }

func (s *cycle) requests() *cycle { return s }

// conn is the client connection when the cycle runs on one, nil on an
// HTTP/2 stream.
func (s *cycle) conn() *Session {
	c, _ := s.self.(*Session)
	return c
}

// Protocol implements session.ProxySession.
func (s *cycle) Protocol() session.Protocol {
	if s.secure {
		return session.HTTPS
	}
	return session.HTTP
}

// FrontendToken implements session.ProxySession.
func (s *cycle) FrontendToken() eventloop.Token { return s.frontToken }

// SessionAddress implements session.ProxySession: the PROXY header's
// source when there was one, else the peer.
func (s *cycle) SessionAddress() (netip.AddrPort, bool) {
	if s.source != nil {
		return *s.source, true
	}
	return s.Peer, s.Peer.IsValid()
}

// LastEvent implements session.ProxySession.
func (s *cycle) LastEvent() time.Time { return s.last.time() }

// ClusterID implements session.ProxySession.
func (s *cycle) ClusterID() (string, bool) {
	if s.x != nil && s.x.clusterID != "" {
		return s.x.clusterID, true
	}
	if s.backSide != nil && s.route != nil && s.route.Action.Cluster != "" {
		return s.route.Action.Cluster, true
	}
	return "", false
}

// UpdateReadiness records an event of the front, the backend connection
// or the dialer's connect.
func (s *cycle) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	s.last = s.stamp()
	if t == s.frontToken {
		s.fready.Update(r)
		return
	}
	if s.backSide == nil {
		return
	}
	if s.back != nil && t == s.backToken {
		s.bready.Update(r)
	} else if s.dial != nil {
		s.dial.Event(t, r)
	}
}

// run runs the request's steps until none makes progress.
func (s *cycle) run(self session.ProxySession) session.Result {
	for i := 0; i < 64; i++ {
		if s.front.gone() {
			return session.Close
		}
		progress, res := s.step(self)
		if res == session.Close {
			return session.Close
		}
		if !progress {
			return session.Continue
		}
	}
	return session.Continue
}

// step runs the current request's phase once.
func (s *cycle) step(self session.ProxySession) (bool, session.Result) {
	switch s.phase {
	case phaseIdle, phaseHead:
		return s.readHead()
	case phaseConnect:
		return s.connect(self)
	case phaseExchange:
		return s.exchange()
	case phaseAnswer:
		return s.writeAnswer()
	case phaseSuspended:
		// A hook's resume drives it; a client that leaves meanwhile ends
		// it (as nginx does unless told to ignore client aborts).
		if s.conn() != nil && s.fready.Readable() && s.fbuf != nil && !s.fbuf.Full() {
			if _, r := s.readFront(); r == protocol.Closed || r == protocol.Error {
				return false, session.Close
			}
		}
	}
	return false, session.Continue
}

// frontReadable reports whether the client may have bytes for us.
func (s *cycle) frontReadable() bool { return s.fready.Readable() }

// readFront reads into fbuf (borrowing it if needed), keeping the
// edge-triggered readiness right. It reports the bytes read and whether
// the client closed or failed.
func (s *cycle) readFront() (int, protocol.SocketResult) {
	if s.fbuf == nil {
		if s.fbuf = s.lp.Pool().Get(); s.fbuf == nil {
			return 0, protocol.Error
		}
		if p := s.held(); len(p) > 0 {
			s.fbuf.Fill(copy(s.fbuf.Space(), p))
			*s.partial = p[:0]
		}
	}
	n, r := readInto(s.front, s.fbuf, &s.fready)
	if n > 0 {
		s.frontSeen = s.stamp()
	}
	if r == protocol.Closed {
		s.frontEOF = true
	}
	return n, r
}

// readInto reads from sock into the free room of buf and records the
// outcome in the side's readiness.
func readInto(sock protocol.Socket, buf *protocol.Buffer, ready *protocol.Readiness) (int, protocol.SocketResult) {
	space := buf.Space()
	if len(space) == 0 {
		return 0, protocol.Continue
	}
	n, r := sock.Read(space)
	buf.Fill(n)
	ready.Read(n, r)
	return n, r
}

// readHead reads and parses a request head. An incomplete head is kept
// in a small heap slice rather than a pool buffer, so a client that
// trickles its head (slowloris) holds no buffer while it does.
func (s *cycle) readHead() (bool, session.Result) {
	progress := false
	if s.fbuf == nil || s.fbuf.Empty() {
		if !s.frontReadable() {
			return false, session.Continue
		}
		n, r := s.readFront()
		if r == protocol.Error && s.fbuf == nil {
			return s.answerWith(ans503, true) // out of buffers
		}
		if n == 0 {
			if s.fbuf != nil && !s.fbuf.Empty() {
				// readFront brought an incomplete head back from partial
				// and the read found nothing (a stale edge): keep it.
				s.keep(s.fbuf.Bytes())
			}
			s.releaseFront()
			if s.frontEOF || r == protocol.Error {
				return false, session.Close // the client left between requests
			}
			return false, session.Continue
		}
		progress = true
	} else if s.frontReadable() && !s.fbuf.Full() {
		if n, r := s.readFront(); n > 0 {
			progress = true
		} else if r == protocol.Error {
			s.lw.stats.clientReset.Add(1)
			return false, session.Close
		}
	}
	s.begin()
	if s.phase == phaseIdle {
		s.phase = phaseHead
		s.x.start = s.lp.Now()
		s.frontSeen = stampOf(s.x.start)
		s.lp.Timers().Cancel(s.frontTimer)
		s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.RequestTimeout)
	}
	c := s.conn()
	if c != nil && !c.h1seen {
		if p, res, done := c.beforeRequests(progress); done {
			return p, res
		}
	}
	b := s.fbuf.Bytes()
	var done bool
	var err error
	if x := s.x; x.built {
		// An HTTP/2 stream wrote the head from its fields and indexed
		// it as it went: it is not parsed again.
		done, err = len(b) >= x.req.Len, x.buildErr
	} else {
		done, err = x.parser.Parse(b, http1.Request, &x.req)
	}
	if err != nil && s.lw.l.cfg.H2C && c != nil && !c.h1seen && !http1Line(b) {
		// On a listener that takes both, bytes that are neither the
		// HTTP/2 preface nor an HTTP/1.x request line get no HTTP/1.1
		// answer the client could not read: the connection just closes
		// (RFC 9113 §3.4: an invalid preface ends the connection).
		s.lw.stats.notHTTP.Add(1)
		return false, session.Close
	}
	if err != nil {
		var herr *http1.Error
		if errors.As(err, &herr) {
			return s.answerWith(answerIndex(herr.Code), true)
		}
		return s.answerWith(ans400, true)
	}
	if !done {
		if s.fbuf.Full() {
			return s.answerWith(ans431, true)
		}
		if s.frontEOF {
			return false, session.Close
		}
		// Give the buffer back; keep the bytes in a slice of their size.
		s.keep(b)
		s.lp.Pool().Put(s.fbuf)
		s.fbuf = nil
		return progress, session.Continue
	}
	s.partial = nil
	s.lw.stats.requests.Add(1)
	return true, s.headDone()
}

// headDone routes a complete request head.
func (s *cycle) headDone() session.Result {
	if c := s.conn(); c != nil {
		c.h1seen = true
	}
	s.headGone = false
	head := s.fbuf.Bytes()[:s.x.req.Len]
	kind, n := s.x.req.Body(false, false)
	if s.lw.l.cfg.MaxBody > 0 && kind == http1.BodyLength && n > s.lw.l.cfg.MaxBody {
		_, res := s.answerWith(ans413, true)
		return res
	}
	s.x.reqBody.Init(kind, n, s.lw.l.cfg.Limits)
	s.x.reqBody.Parse(nil) // no body, or an empty one: done already
	s.headParsed = true
	s.x.reqBodyIn = 0
	s.x.known = findFields(&s.x.req, head)
	s.setRequestID(head)
	if s.lw.l.cfg.AccessLog != nil {
		s.x.logLine = append(append(append(s.x.logLine[:0], s.x.req.Method.Of(head)...), s.x.req.Host.Of(head)...), s.x.req.Target.Of(head)...)
		s.x.logSpans = [3]int{s.x.req.Method.Len(), s.x.req.Method.Len() + s.x.req.Host.Len(), len(s.x.logLine)}
	}
	if !s.x.req.KeepAlive() {
		s.closeAfter = true
	}
	if s.overLimit {
		_, res := s.answerStatus(ans429, 429, answerText[ans429], true, "\r\nRetry-After: 1")
		return res
	}
	s.x.reqEdit.Reset(head, &s.x.req)
	s.x.hreq = Request{s: s}
	switch s.x.req.Form {
	case http1.FormAbsolute:
		// RFC 9112 §3.2.2: the target's authority is the host, whatever
		// Host says; the backend gets it in origin-form with that Host.
		if !s.toOriginForm(head) {
			_, res := s.answerWith(ans400, true)
			return res
		}
	case http1.FormAuthority:
		// CONNECT (RFC 9110 §9.3.6): a reverse proxy does not open
		// tunnels to arbitrary hosts; any other method cannot use this
		// form (RFC 9112 §3.2.3).
		idx := ans400
		if s.x.req.MethodID == http1.MethodCONNECT {
			idx = ans501
		}
		_, res := s.answerWith(idx, true)
		return res
	}
	return s.advance()
}

// toOriginForm rewrites an absolute-form request to origin-form, with
// its authority as Host. It reports false when there is no authority.
func (s *cycle) toOriginForm(head []byte) bool {
	x := s.x
	auth := x.req.Authority.Of(head)
	if len(auth) == 0 || x.reqEdit.Set("Host", auth) != nil {
		return false
	}
	target := x.req.Target.Of(head)
	rest := target[int(x.req.Authority.End)-int(x.req.Target.Start):]
	if len(rest) == 0 || rest[0] != '/' {
		rest = append([]byte{'/'}, rest...) // "http://a" and "http://a?q" have the root path
	}
	if x.reqEdit.SetTarget(rest) != nil {
		return false
	}
	x.hreq.edited = true
	return true
}

// chooseRoute looks the request up in the listener's routes (by the host
// and target hooks may have changed) and answers what a route answers
// (404, deny, redirect). It reports whether the request goes on.
func (s *cycle) chooseRoute() bool {
	x := s.x
	head := s.fbuf.Bytes()[:x.req.Len]
	host, target := x.req.Host.Of(head), x.req.Target.Of(head)
	if x.req.Form == http1.FormAsterisk {
		target = []byte("/") // OPTIONS * (RFC 9112 §3.2.4) asks about the host: its root route answers
	}
	if x.hreq.edited {
		host, _ = x.reqEdit.Get("host")
		target = x.reqEdit.Target()
	}
	f, ok := s.lw.routes.LookupRequest(host, target, x.req.Method.Of(head), &x.reqEdit)
	if !ok {
		if x.hreq.cluster != "" {
			return true // a hook chose the cluster: no route needed
		}
		s.answerWith(ans404, false)
		return false
	}
	s.route = f
	if m := s.lw.st.routeHooks[s.lw.l]; m != nil {
		x.rhooks = m[f.ID]
	}
	switch f.Action.Kind {
	case router.Deny:
		s.answerWith(ans401, false)
		return false
	case router.Redirect:
		s.redirect(f, head)
		return false
	}
	return true
}

// chooseCluster settles where the request goes: the cluster a hook chose,
// else the route's. It answers 503 when there is none.
func (s *cycle) chooseCluster() bool {
	x := s.x
	x.clusterID = x.hreq.cluster
	if x.clusterID == "" && s.route != nil {
		x.clusterID = s.route.Action.Cluster
	}
	s.cluster = s.lp.Clusters().Cluster(x.clusterID)
	if s.cluster == nil {
		s.answerWith(ans503, true)
		return false
	}
	x.sticky = ""
	if name := s.lw.l.cfg.StickyCookie; name != "" {
		if v := cookieValue(s.fbuf.Bytes()[:x.req.Len], &x.req, name); v != nil {
			x.sticky = string(v)
		}
	}
	return true
}

// connect gets a backend connection through the dialer: a stream of an
// HTTP/2 backend, a pooled keep-alive connection, or a new connect
// (with the dialer's retries on other backends and its timeout).
func (s *cycle) connect(self session.ProxySession) (bool, session.Result) {
	d := s.dial
	if d == nil {
		if s.cluster == nil {
			return s.answerWith(ans503, true)
		}
		r := &s.x.hreq
		d = s.lw.st.getDialer()
		s.dial = d
		d.Cluster, d.Take = s.x.clusterID, take
		d.Attempts, d.ConnectTimeout = min(s.lw.l.cfg.ConnectAttempts, maxAttempts), s.lw.l.cfg.ConnectTimeout
		d.Sticky, d.Key, d.UseKey, d.BackendID = s.x.sticky, r.key, r.useKey, r.backendID
		d.Dial(s.lp, self)
	}
	switch d.Poll() {
	case session.DialConnecting:
		return false, session.Continue
	case session.DialConnected:
		sock, t, r := d.Handoff()
		s.useBack(d.Backend(), sock, t, false)
		s.bready.Merge(r)
		s.lw.stats.newBackend.Add(1)
		return true, session.Continue
	case session.DialTaken: // take set the connection up
		return true, session.Continue
	}
	s.lp.Logger().Debug("http: no backend left", "cluster", d.Cluster, "attempts", d.Attempted(), "err", d.Err())
	return s.answerWith(ans503, true)
}

// take is the dialer's Take: a stream when the cluster's backends speak
// HTTP/2, else an idle pooled connection unless this is the fresh retry
// of a request a pooled connection failed.
func take(self session.ProxySession, b *backend.Backend) session.TakeResult {
	s := self.(cycleOwner).requests()
	if s.lw.st.h2Clusters[s.x.clusterID] {
		bs, t, err := s.openH2Stream(b)
		if err != nil {
			return session.TakeSkip
		}
		s.useBackStream(b, bs, t)
		return session.Taken
	}
	if !s.retried {
		if sock, t, ok := s.lw.st.take(s.lp, b, s.self); ok {
			s.useBack(b, sock, t, true)
			s.lw.stats.reusedBackend.Add(1)
			return session.Taken
		}
	}
	return session.TakeNone
}

// useBack takes a TCP connection to b as the back stream: a fresh one,
// or one from the idle pool (reused).
func (s *cycle) useBack(b *backend.Backend, sock protocol.TCPSocket, t eventloop.Token, reused bool) {
	s.bsock = tcpStream{sock}
	s.attachBack(b, &s.bsock, t, reused)
}

// useBackStream takes an HTTP/2 stream as the back stream. It counts as
// a reused connection: a request the server refused (REFUSED_STREAM, a
// GOAWAY before it) is sent again.
func (s *cycle) useBackStream(b *backend.Backend, bs *h2BackStream, t eventloop.Token) {
	s.lw.stats.h2BackStreams.Add(1)
	s.attachBack(b, bs, t, true)
}

func (s *cycle) attachBack(b *backend.Backend, back backStream, t eventloop.Token, reused bool) {
	s.backend, s.back, s.backToken, s.reused = b, back, t, reused
	s.bready.Reset()
	if reused {
		s.bready.SetWritable() // a pooled connection's writable edge was used up in the pool; a stream's has none
	}
	s.x.connected = s.lp.Now()
	s.lp.Timers().Cancel(s.backTimer)
	s.backTimer = s.lp.Schedule(t, 0, s.lw.l.cfg.BackTimeout)
	s.backSeen = s.stamp()
	s.startExchange()
}

// editRequest makes the proxy's own edits to the request head, once per
// request: hop-by-hop fields out, the forwarding fields, the route's.
func (s *cycle) editRequest() {
	head := s.fbuf.Bytes()[:s.x.req.Len]
	e := &s.x.reqEdit
	e.RemoveConnectionOptions()
	e.RemoveNamed("keep-alive")
	e.RemoveNamed("proxy-connection")
	if s.x.req.ConnUpgrade && s.x.req.HasUpgrade {
		// An upgrade (WebSocket) is hop-by-hop by the letter, but it is
		// the one a proxy passes on: the backend must see it to answer 101.
		e.Add("Upgrade", s.x.req.Upgrade.Of(head))
		e.Add("Connection", []byte("upgrade"))
	}
	s.forwardedFields(head)
	if s.route != nil {
		for _, name := range s.route.RemoveRequestHeaders {
			e.RemoveNamed(name)
		}
		for _, h := range s.route.AddRequestHeaders {
			e.Add(h.Name, []byte(h.Value))
		}
	}
}

// startExchange queues the edited request head (and the body bytes that
// came with it) for the backend connection just taken.
func (s *cycle) startExchange() {
	s.phase = phaseExchange
	s.backend.CountRequest()
	s.x.backendID = s.backend.ID
	e := &s.x.reqEdit
	s.headSent, s.headGone, s.reqDone, s.x.pendingBody = false, false, false, 0
	s.respHead, s.respSent, s.x.respBytes = false, false, 0
	s.x.rparser.Reset()
	// Each attempt frames the body from its start, which is still in
	// fbuf (a request is sent again only while nothing of it was
	// consumed): a retry must not inherit the first attempt's state.
	kind, n := s.x.req.Body(false, false)
	s.x.reqBody.Init(kind, n, s.lw.l.cfg.Limits)
	s.x.reqBody.Parse(nil)
	s.x.reqBodyIn = 0
	s.x.respBuilt, s.x.respBuildErr = false, nil
	head := s.fbuf.Bytes()[:s.x.req.Len]
	if s.back.takeRequest(e, s.x.req.Method.Of(head), s.x.reqBody.Kind(), s.x.req.ContentLength) == headSent {
		// An HTTP/2 backend stream took the head as fields: its body
		// follows as content, framed by sendRequest.
		s.reqData, s.headSent = true, true
		s.x.reqBody.KeepTrailers()
		s.x.reqOut = s.x.segs[:0]
		s.headConsumed()
		return
	}
	s.reqData = false
	s.x.reqOut = e.Segments(s.x.segs[:0])
	// Body bytes that came with the head go in the same writev.
	if b := s.fbuf.Bytes(); len(b) > s.x.req.Len && s.x.reqBody.Kind() != http1.BodyNone && len(s.x.reqOut) < len(s.x.segs) {
		n, _, err := s.x.reqBody.Parse(b[s.x.req.Len:])
		switch {
		case s.lw.l.cfg.MaxBody > 0 && int64(n) > s.lw.l.cfg.MaxBody:
			s.x.tooBig = true // sendRequest answers 413 before writing anything
		case err == nil && n > 0:
			s.x.reqOut = append(s.x.reqOut, b[s.x.req.Len:s.x.req.Len+n])
			s.x.pendingBody = n
		}
	}
}

// headConsumed drops the request head from fbuf once the backend has
// it, except that a bodiless request on a reused connection keeps it
// until the response starts, to be sent again on a fresh connection if
// the pooled one turns out dead.
func (s *cycle) headConsumed() {
	if !(s.reused && s.x.reqBody.Kind() == http1.BodyNone) {
		s.fbuf.Consume(s.x.req.Len)
		s.headGone = true
	}
}

// forwardedFields appends the client to X-Forwarded-For and Forwarded,
// and sets X-Forwarded-Proto, X-Forwarded-Port and X-Request-Id when the
// client did not, leaving out what Config.OmitForwarding lists.
func (s *cycle) forwardedFields(head []byte) {
	omit := s.lw.l.cfg.OmitForwarding
	if omit&AllForwarding == AllForwarding {
		return
	}
	e := &s.x.reqEdit
	k := &s.x.known
	client, _ := s.SessionAddress()
	ip := client.Addr().AppendTo(s.x.scratch[:0])
	// Values that extend the client's are built in the worker's scratch
	// (the editor copies them), so that no request allocates.
	tmp := s.lw.st.tmp[:0]
	if omit&XForwardedFor == 0 {
		if k.xff >= 0 {
			tmp = append(append(append(tmp, s.x.req.Fields[k.xff].Value.Of(head)...), ", "...), ip...)
			e.Replace(k.xff, tmp)
		} else {
			e.Add("X-Forwarded-For", ip)
		}
	}
	if k.xfp < 0 && omit&XForwardedProto == 0 {
		e.Add("X-Forwarded-Proto", []byte(s.lw.l.cfg.Scheme))
	}
	if k.xfport < 0 && omit&XForwardedPort == 0 {
		e.Add("X-Forwarded-Port", strconv.AppendUint(tmp[:0], uint64(s.localPort), 10))
	}
	if omit&Forwarded == 0 {
		fwd := tmp[:0]
		if k.fwd >= 0 {
			fwd = append(append(fwd, s.x.req.Fields[k.fwd].Value.Of(head)...), ", "...)
		}
		fwd = append(fwd, "for="...)
		if client.Addr().Is6() {
			fwd = append(append(append(fwd, "\"["...), ip...), "]\""...)
		} else {
			fwd = append(fwd, ip...)
		}
		fwd = append(append(fwd, ";proto="...), s.lw.l.cfg.Scheme...)
		if k.fwd >= 0 {
			e.Replace(k.fwd, fwd)
		} else {
			e.Add("Forwarded", fwd)
		}
		tmp = fwd
	}
	if omit&XRequestID == 0 {
		if k.xrid < 0 {
			e.Add("X-Request-Id", s.x.id[:s.x.idLen])
		} else if s.x.req.Fields[k.xrid].Value.Len() == 0 {
			e.Replace(k.xrid, s.x.id[:s.x.idLen]) // an empty one was replaced by ours
		}
	}
	s.lw.st.tmp = tmp[:0]
}

// knownFields are the indexes of the request fields the proxy edits, -1
// when absent.
type knownFields struct{ xff, xfp, xfport, fwd, xrid int }

// findFields finds them in one pass over the fields, comparing names by
// length first: a head is walked once, not once per field of interest.
func findFields(h *http1.Head, head []byte) knownFields {
	k := knownFields{-1, -1, -1, -1, -1}
	for i, f := range h.Fields {
		name := f.Name.Of(head)
		var at *int
		switch len(name) {
		case 9:
			if http1.EqualFold(name, "forwarded") {
				at = &k.fwd
			}
		case 12:
			if http1.EqualFold(name, "x-request-id") {
				at = &k.xrid
			}
		case 15:
			if http1.EqualFold(name, "x-forwarded-for") {
				at = &k.xff
			}
		case 16:
			if http1.EqualFold(name, "x-forwarded-port") {
				at = &k.xfport
			}
		case 17:
			if http1.EqualFold(name, "x-forwarded-proto") {
				at = &k.xfp
			}
		}
		if at != nil && *at < 0 {
			*at = i
		}
	}
	return k
}

// setRequestID takes the client's X-Request-Id, or makes one.
func (s *cycle) setRequestID(head []byte) {
	if head != nil {
		if i := s.x.known.xrid; i >= 0 && s.x.req.Fields[i].Value.Len() > 0 {
			s.x.idLen = copy(s.x.id[:], s.x.req.Fields[i].Value.Of(head))
			return
		}
	}
	s.lw.st.seq++
	v := s.lw.st.seq*0x9E3779B97F4A7C15 ^ s.lw.st.salt
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		s.x.id[i] = hex[v&15]
		v >>= 4
	}
	s.x.idLen = 16
}

// exchange moves the request to the backend and the response to the
// client.
func (s *cycle) exchange() (bool, session.Result) {
	p1, res := s.sendRequest()
	if res == session.Close {
		return false, res
	}
	if s.phase != phaseExchange {
		// Sending ended the exchange: an answer of the proxy's own took
		// over (the backend went away, the request was refused), and
		// the backend connection is gone with its readiness.
		return p1, res
	}
	p2, res := s.relayResponse()
	return p1 || p2, res
}

// sendRequest writes the edited head, then the body as it arrives,
// stopping at the end of the request (pipelined bytes stay in fbuf).
func (s *cycle) sendRequest() (bool, session.Result) {
	if s.x.tooBig {
		return s.answerWith(ans413, true)
	}
	progress := false
	for !s.reqDone {
		if len(s.x.reqOut) > 0 {
			if !s.bready.Writable() {
				return progress, session.Continue
			}
			n, r := s.back.Writev(s.x.reqOut)
			s.x.reqOut = advance(s.x.reqOut, n)
			if n > 0 {
				s.backend.CountBytes(uint64(n), 0)
				s.x.sentBack += uint64(n)
				progress = true
				s.backSeen = s.stamp()
			}
			if r == protocol.WouldBlock {
				s.bready.Wrote(r)
				if len(s.x.reqOut) > 0 {
					return progress, session.Continue
				}
				// All taken, though the socket is full now: account for
				// what was written before waiting for the next edge.
			} else if r != protocol.Continue {
				return s.backendBroke()
			}
			if !s.headSent {
				s.headSent = true
				s.headConsumed()
			}
			s.fbuf.Consume(s.x.pendingBody) // body bytes, sent with the head or after it
			s.x.reqBodyIn += int64(s.x.pendingBody)
			s.x.pendingBody = 0
			continue
		}
		if s.x.reqBody.Done() {
			if s.reqData {
				// The end of the content (and a chunked body's trailers).
				switch r := s.back.endBody(s.x.reqBody.TrailerSection()); r {
				case protocol.WouldBlock:
					s.bready.Wrote(r)
					return progress, session.Continue
				case protocol.Continue:
				default:
					return s.backendBroke()
				}
			}
			s.reqDone = true
			break
		}
		// Frame the body bytes already buffered.
		if !s.fbuf.Empty() {
			n, data, done, err := frameBody(&s.x.reqBody, s.fbuf.Bytes(), s.reqData)
			if err != nil {
				return s.answerWith(ans400, true)
			}
			if s.lw.l.cfg.MaxBody > 0 && s.x.reqBodyIn+int64(n) > s.lw.l.cfg.MaxBody {
				return s.answerWith(ans413, true)
			}
			if n > 0 {
				if len(data) == 0 { // chunk framing only: nothing to write
					s.fbuf.Consume(n)
					s.x.reqBodyIn += int64(n)
					continue
				}
				s.x.pendingBody = n
				s.x.segs[0] = data
				s.x.reqOut = s.x.segs[:1]
				continue
			}
			if done {
				continue
			}
		}
		if s.frontEOF {
			// The client closed before the end of its body.
			s.lw.stats.clientReset.Add(1)
			return false, session.Close
		}
		if !s.frontReadable() {
			return progress, session.Continue
		}
		n, r := s.readFront()
		if n > 0 {
			progress = true
		}
		if r == protocol.Error {
			if s.fbuf == nil {
				return s.answerWith(ans503, true) // out of buffers
			}
			s.lw.stats.clientReset.Add(1)
			return false, session.Close
		}
		if n == 0 && r != protocol.Closed {
			return progress, session.Continue
		}
	}
	return progress, session.Continue
}

// frameBody accounts for the body bytes at the start of b: n of them
// are the body's, and data is what to write of them, all of them for a
// peer that takes HTTP/1.1 bytes, the content only (one chunk's data at
// a time) for an HTTP/2 stream.
func frameBody(bd *http1.Body, b []byte, content bool) (n int, data []byte, done bool, err error) {
	if content {
		return bd.Decode(b)
	}
	n, done, err = bd.Parse(b)
	return n, b[:n], done, err
}

// advance drops n written bytes from the front of bufs.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			return bufs
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	for len(bufs) > 0 && len(bufs[0]) == 0 {
		bufs = bufs[1:]
	}
	return bufs
}

// readBack reads into bbuf, borrowing it if needed.
func (s *cycle) readBack() (int, protocol.SocketResult) {
	if s.bbuf == nil {
		if s.bbuf = s.lp.Pool().Get(); s.bbuf == nil {
			return 0, protocol.Error
		}
	}
	n, r := readInto(s.back, s.bbuf, &s.bready)
	if n > 0 {
		s.backend.CountBytes(0, uint64(n))
		s.x.gotBack += uint64(n)
		s.backSeen = s.stamp()
	}
	return n, r
}

// relayResponse reads the response head, edits it, and streams the head
// and the body to the client, stopping at the end of the response.
func (s *cycle) relayResponse() (bool, session.Result) {
	progress := false
	for {
		// Flush what is ready for the client.
		if len(s.x.respOut) > 0 {
			if !s.fready.Writable() {
				return progress, session.Continue
			}
			n, r := s.front.Writev(s.x.respOut)
			s.x.respOut = advance(s.x.respOut, n)
			if n > 0 {
				progress, s.respSent = true, true
				s.frontSeen = s.stamp()
				s.x.respBytes += int64(n)
			}
			if r == protocol.WouldBlock {
				s.fready.Wrote(r)
				if len(s.x.respOut) > 0 {
					return progress, session.Continue
				}
				// All taken (a TLS socket encrypts everything and keeps
				// what the kernel did not take to flush): the bytes must
				// leave bbuf now, or the next round would frame them
				// again, head included, as body.
			} else if r != protocol.Continue {
				s.lw.stats.clientReset.Add(1)
				return false, session.Close
			}
			s.bbuf.Consume(s.x.pendingResp)
			s.x.pendingResp = 0
			if s.tunnel {
				return true, s.conn().startTunnel()
			}
			if s.respHead && s.x.respBody.Done() {
				return true, s.responseDone()
			}
			continue
		}
		if s.respHead && s.x.respBody.Done() {
			return true, s.responseDone()
		}
		// Frame what is buffered.
		if s.bbuf != nil && !s.bbuf.Empty() {
			if !s.headGone && s.fbuf != nil {
				s.fbuf.Consume(s.x.req.Len)
				s.headGone = true
			}
			if !s.respHead {
				b := s.bbuf.Bytes()
				var done bool
				var err error
				if x := s.x; x.respBuilt {
					// An HTTP/2 backend stream wrote the head from its
					// fields and indexed it: it is not parsed again.
					done, err = len(b) >= x.resp.Len, x.respBuildErr
				} else {
					done, err = x.rparser.Parse(b, http1.Response, &x.resp)
				}
				if err != nil {
					s.lw.stats.backendBadResponse.Add(1)
					return s.backendFailed(ans502)
				}
				if !done {
					if s.bbuf.Full() {
						s.lw.stats.backendBadResponse.Add(1)
						return s.backendFailed(ans502)
					}
				} else {
					if !s.startResponse(b) {
						return true, session.Continue // a hook answered instead
					}
					continue
				}
			} else {
				n, data, done, err := frameBody(&s.x.respBody, s.bbuf.Bytes(), s.respData)
				if err != nil {
					s.lw.stats.backendBadResponse.Add(1)
					return s.backendFailed(ans502)
				}
				if n > 0 {
					if len(data) == 0 { // chunk framing only: nothing to write
						s.bbuf.Consume(n)
						continue
					}
					s.x.pendingResp = n
					s.x.rsegs[0] = data
					s.x.respOut = s.x.rsegs[:1]
					continue
				}
				if done {
					continue
				}
			}
		}
		if !s.bready.Readable() {
			return progress, session.Continue
		}
		n, r := s.readBack()
		if n > 0 {
			progress = true
			continue
		}
		switch r {
		case protocol.Closed:
			if s.respHead && s.x.respBody.Kind() == http1.BodyUntilClose {
				s.respBodyEOF = true
				s.closeAfter = true
				return true, s.responseDone()
			}
			return s.backendBroke()
		case protocol.Error:
			if s.bbuf == nil {
				// The pool is exhausted: the proxy's own shortage, 503,
				// not the backend's fault.
				return s.backendFailed(ans503)
			}
			return s.backendBroke()
		case protocol.Continue:
			return progress, session.Continue // bbuf full: the client must take bytes first
		}
		return progress, session.Continue
	}
}

// startResponse edits a parsed response head and queues it. It reports
// false when a Response hook answered instead.
func (s *cycle) startResponse(b []byte) bool {
	h := &s.x.resp
	if h.Status >= 100 && h.Status < 200 && h.Status != 101 {
		// An interim response (100 Continue, 103 Early Hints) goes to the
		// client as it is; the final one follows.
		s.x.pendingResp = h.Len
		s.x.rsegs[0] = b[:h.Len]
		s.x.respOut = s.x.rsegs[:1]
		s.x.rparser.Reset()
		return true
	}
	s.respHead = true
	s.x.respAt = s.lp.Now()
	kind, n := h.Body(s.x.req.MethodID == http1.MethodHEAD, s.x.req.MethodID == http1.MethodCONNECT)
	if h.Status == 101 && !(s.x.req.ConnUpgrade && s.x.req.HasUpgrade && s.conn() != nil && s.back == &s.bsock) {
		// Switching protocols the client never asked for (RFC 9110
		// §15.2.2, §7.8): relayed, it would leave the client waiting on
		// a connection nobody speaks on. (Only a client's own connection
		// to a backend's can become a tunnel: an HTTP/2 stream cannot.)
		s.lw.stats.backendBadResponse.Add(1)
		s.backendFailed(ans502)
		return false
	}
	if kind == http1.BodyTunnel {
		if h.Status == 101 && s.x.req.ConnUpgrade {
			// Switching protocols: once this head is written the
			// connection is a byte pipe between client and backend.
			s.tunnel = true
		} else {
			kind, n = http1.BodyUntilClose, 0 // a 2xx to a CONNECT we did not ask for
		}
		s.closeAfter, s.backNoReuse = true, true
	}
	s.x.respBody.Init(kind, n, s.lw.l.cfg.Limits)
	s.x.respBody.Parse(nil)
	if kind == http1.BodyUntilClose || !h.KeepAlive() {
		s.backNoReuse = true
	}
	if kind == http1.BodyUntilClose {
		s.closeAfter = true
	}
	head := b[:h.Len]
	e := &s.x.respEdit
	e.Reset(head, h)
	e.RemoveConnectionOptions()
	e.RemoveNamed("keep-alive")
	if s.tunnel {
		e.Add("Upgrade", h.Upgrade.Of(head))
		e.Add("Connection", []byte("upgrade"))
	}
	if h.FieldIndex(head, "x-request-id", 0) < 0 {
		e.Add("X-Request-Id", s.x.id[:s.x.idLen])
	}
	if s.secure && s.route != nil && s.route.HSTS != "" && h.FieldIndex(head, "strict-transport-security", 0) < 0 {
		e.Add("Strict-Transport-Security", []byte(s.route.HSTS))
	}
	if s.route != nil {
		for _, name := range s.route.RemoveResponseHeaders {
			e.RemoveNamed(name)
		}
		for _, f := range s.route.AddResponseHeaders {
			e.Add(f.Name, []byte(f.Value))
		}
	}
	if name := s.lw.l.cfg.StickyCookie; name != "" && s.backend != nil && s.backend.StickyID != s.x.sticky {
		v := make([]byte, 0, len(name)+len(s.backend.StickyID)+24)
		v = append(append(append(append(v, name...), '='), s.backend.StickyID...), "; Path=/; HttpOnly"...)
		e.Add("Set-Cookie", v)
	}
	if !s.runResponseHooks() {
		return false
	}
	switch s.front.takeResponse(e, kind, n) {
	case headFailed:
		return true // the stream is gone: the cycle closes
	case headSent:
		s.respData = true
		s.x.respBody.KeepTrailers()
		// An HTTP/2 stream took the head as fields: no HTTP/1.1 bytes to
		// build and parse again. The body follows from bbuf.
		s.bbuf.Consume(h.Len)
		s.x.pendingResp = 0
		s.x.respOut = s.x.rsegs[:0]
		s.respSent = true
		s.lw.stats.responses.Add(1)
		return true
	}
	if !s.reqDone && !s.tunnel {
		// The backend answers before it has the whole request (an early
		// 413, an error): the rest of the body cannot be told from a next
		// request, so the connection ends after this response, and the
		// response says so (RFC 9112 §9.6) rather than leave pipelined
		// requests to find out.
		s.closeAfter = true
	}
	if (s.closeAfter || s.lp.ShuttingDown()) && !s.tunnel {
		s.closeAfter = true
		e.Add("Connection", []byte("close"))
	}
	s.x.pendingResp = h.Len
	s.x.respOut = e.Segments(s.x.rsegs[:0])
	s.lw.stats.responses.Add(1)
	// Body bytes that came with the head go in the same writev: a small
	// response leaves in one system call. (Not for a tunnel: what follows
	// a 101 belongs to the new protocol, and the pipe takes it.)
	if !s.tunnel && len(b) > h.Len && len(s.x.respOut) < len(s.x.rsegs) {
		n, _, err := s.x.respBody.Parse(b[h.Len:])
		if err == nil && n > 0 {
			s.x.respOut = append(s.x.respOut, b[h.Len:h.Len+n])
			s.x.pendingResp += n
		}
	}
	return true
}

// responseDone ends one exchange: the backend connection goes back to
// its pool (or is closed), and the client's connection waits for the
// next request, or closes.
func (s *cycle) responseDone() session.Result {
	if !s.reqDone {
		// The backend answered before the request body was all sent (an
		// early error, a 413 of its own): that connection cannot be reused
		// and the rest of the client's body cannot be told from a next
		// request.
		s.backNoReuse, s.closeAfter = true, true
	}
	if s.respData {
		s.front.endBody(s.x.respBody.TrailerSection()) // the content ends (with a chunked body's trailers)
	}
	s.exchangeEnded(nil)
	s.dropBack(!s.backNoReuse)
	s.lp.Pool().Put(s.bbuf)
	s.bbuf = nil
	if s.closeAfter || s.frontEOF {
		return session.Close
	}
	s.resetExchange()
	s.phase = phaseIdle
	if s.fbuf != nil && s.fbuf.Empty() {
		s.releaseFront()
	}
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.FrontTimeout)
	s.frontSeen = s.stamp()
	return session.Continue
}

func (s *cycle) resetExchange() {
	if s.backSide != nil {
		s.route, s.cluster = nil, nil
	}
	s.freeExchange()
	s.respHead, s.respSent, s.respBodyEOF, s.backNoReuse = false, false, false, false
	s.reqData, s.respData = false, false
	s.retried = false
	s.headParsed = false
}

// freeExchange gives the exchange back to the worker, adding its
// backend bytes to the listener's.
func (s *cycle) freeExchange() {
	if x := s.x; x != nil {
		if x.sentBack|x.gotBack != 0 {
			s.lw.stats.bytesIn.Add(x.sentBack)
			s.lw.stats.bytesOut.Add(x.gotBack)
		}
		s.lw.st.putExchange(x)
		s.x = nil
	}
	s.endSide()
}

func (s *cycle) releaseFront() {
	s.lp.Pool().Put(s.fbuf)
	s.fbuf = nil
}

// backendBroke handles a backend connection that failed mid-exchange.
func (s *cycle) backendBroke() (bool, session.Result) {
	if s.back.neverUp() && !s.respSent && !s.headGone {
		// The HTTP/2 connection never came up: a failed connect, which
		// the connection reported to the backend; try the next one.
		s.closeBack(false)
		s.dial.Next()
		s.phase = phaseConnect
		return true, session.Continue
	}
	s.lw.stats.backendReset.Add(1)
	if s.reused && !s.retried && !s.respSent && !s.headGone && (s.bbuf == nil || s.bbuf.Empty()) && s.replayable() {
		// A pooled connection the server had closed: once more, fresh.
		s.lw.stats.retried.Add(1)
		s.dropBack(false)
		s.retried = true
		s.phase = phaseConnect
		return true, session.Continue
	}
	return s.backendFailed(ans502)
}

// replayable reports whether a request whose reused backend connection
// failed may be sent again: the server provably did not process it (an
// HTTP/2 stream it refused, RFC 9113 §8.7, or nothing of the request
// was written), or a second copy does no harm because the method is
// idempotent (RFC 9110 §9.2.2). A POST the server read and then dropped
// gets 502: only the client can know whether to send it again.
func (s *cycle) replayable() bool {
	if s.back.unprocessed() || s.x.sentBack == 0 {
		return true
	}
	switch s.x.req.MethodID {
	case http1.MethodGET, http1.MethodHEAD, http1.MethodOPTIONS, http1.MethodTRACE, http1.MethodPUT, http1.MethodDELETE:
		return true
	}
	return false
}

// backendFailed answers the client with status idx when nothing of the
// response reached it yet, and closes it otherwise.
func (s *cycle) backendFailed(idx int) (bool, session.Result) {
	s.dropBack(false)
	if s.respSent {
		return false, session.Close
	}
	return s.answerWith(idx, true)
}

// dropBack releases the backend connection (into the idle pool when
// reuse is true and allowed, else closed) and ends its accounting.
func (s *cycle) dropBack(reuse bool) {
	if s.backSide == nil {
		return
	}
	s.closeBack(reuse)
	if s.dial != nil {
		s.dial.Close() // a connect under way, or the backend's accounting
		s.lw.st.putDialer(s.dial)
		s.dial = nil
	}
}

// closeBack closes or pools the backend connection the session holds;
// the dialer keeps the backend's accounting.
func (s *cycle) closeBack(reuse bool) {
	if s.back == nil {
		return
	}
	s.lp.Timers().Cancel(s.backTimer)
	s.back.release(s, reuse)
	s.back, s.bsock, s.reused = nil, tcpStream{}, false
	s.backend = nil
}

// answerWith writes an answer of the proxy's own; the connection closes
// after it when closeConn (or the client asked so).
func (s *cycle) answerWith(idx int, closeConn bool) (bool, session.Result) {
	status := answerStatus[idx]
	if idx == ansRedirect {
		status = 301
	}
	return s.answerStatus(idx, status, answerText[idx], closeConn, "")
}

func (s *cycle) answerStatus(idx, status int, reason string, closeConn bool, extra string) (bool, session.Result) {
	s.lw.stats.answers[idx].Add(1)
	if !s.beginAnswer(closeConn) {
		return false, session.Close
	}
	s.x.answer = appendAnswer(s.x.answer[:0], status, reason, s.x.id[:s.x.idLen], s.closeAfter, extra, s.template(status))
	s.queueAnswer(status)
	return true, session.Continue
}

// beginAnswer readies the session for an answer of the proxy's own: the
// backend connection and whatever it sent go, the request has an id,
// and closeAfter says whether the connection ends after the answer. It
// reports false when a response already started: then the connection
// can only close.
func (s *cycle) beginAnswer(closeConn bool) bool {
	s.begin()
	s.dropBack(false)
	if s.bbuf != nil { // a response the answer replaces
		s.lp.Pool().Put(s.bbuf)
		s.bbuf = nil
	}
	if s.respSent {
		return false
	}
	if s.x.idLen == 0 {
		s.setRequestID(nil)
	}
	s.respHead = false
	// A request body not read to its end cannot be told from the next
	// request: close after answering one that had a body.
	s.closeAfter = closeConn || s.closeAfter || s.frontEOF || s.lp.ShuttingDown() || s.headParsed && !s.x.reqBody.Done()
	return true
}

// queueAnswer has the answer built in x.answer written next.
func (s *cycle) queueAnswer(status int) {
	s.x.answerCode = status
	s.phase = phaseAnswer
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.FrontTimeout)
}

// writeAnswer flushes the answer, then closes or goes on with the next
// request.
func (s *cycle) writeAnswer() (bool, session.Result) {
	if !s.fready.Writable() {
		return false, session.Continue
	}
	n, r := s.front.Write(s.x.answer)
	s.x.answer = s.x.answer[n:]
	if r == protocol.WouldBlock {
		s.fready.Wrote(r)
		return n > 0, session.Continue
	}
	if r != protocol.Continue {
		return false, session.Close
	}
	s.x.answer = s.x.answer[:0]
	s.exchangeEnded(nil)
	if s.closeAfter {
		// The connection's closeGently shuts our side (close_notify first
		// over TLS) and lets the client read the answer before it closes.
		return false, session.Close
	}
	// The request had no body left unread (else closeAfter): go on.
	if s.fbuf != nil && s.x != nil && !s.headGone {
		s.fbuf.Consume(s.x.req.Len)
	}
	s.resetExchange()
	s.phase = phaseIdle
	if s.fbuf != nil && s.fbuf.Empty() {
		s.releaseFront()
	}
	return true, session.Continue
}

// redirect answers with the route's redirect.
func (s *cycle) redirect(f *router.Frontend, head []byte) (bool, session.Result) {
	a := f.Action
	status := a.Status
	if status == 0 {
		status = 301
	}
	loc := make([]byte, 0, 128)
	loc = append(loc, "\r\nLocation: "...)
	switch {
	case a.RedirectTo != "":
		loc = append(loc, a.RedirectTo...)
		if !a.RedirectExact {
			loc = append(loc, s.x.req.Target.Of(head)...)
		}
	default:
		scheme := a.RedirectScheme
		if scheme == "" {
			scheme = "https"
		}
		loc = append(append(append(loc, scheme...), "://"...), hostOnly(s.x.req.Host.Of(head))...)
		loc = append(loc, s.x.req.Target.Of(head)...)
	}
	reason := "Moved Permanently"
	switch status {
	case 302:
		reason = "Found"
	case 307:
		reason = "Temporary Redirect"
	case 308:
		reason = "Permanent Redirect"
	}
	return s.answerStatus(ansRedirect, status, reason, false, string(loc))
}

// hostOnly strips the port from a Host value.
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		for i, c := range h {
			if c == ']' {
				return h[:i+1]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			return h[:i]
		}
	}
	return h
}

// timeout handles the request's timers: the front's (keep-alive, request,
// client), a suspended hook's deadline, the dialer's connect and the
// backend's.
func (s *cycle) timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	now := s.lp.Now()
	if s.phase == phaseSuspended {
		if t == s.frontToken && name == timerHook {
			return s.hookTimedOut()
		}
		return session.Continue
	}
	if t == s.frontToken {
		var limit time.Duration
		var since stamp
		switch s.phase {
		case phaseHead:
			limit, since = s.lw.l.cfg.RequestTimeout, stampOf(s.x.start)
		case phaseIdle:
			limit, since = s.lw.l.cfg.FrontTimeout, s.frontSeen
		case phaseExchange:
			if s.respHead && len(s.x.respOut) > 0 {
				limit, since = s.lw.l.cfg.FrontTimeout, s.frontSeen // the client does not read
			} else {
				limit, since = s.lw.l.cfg.FrontTimeout, s.frontSeen
				if s.backSeen > since {
					since = s.backSeen // the exchange is moving; the back timer watches it
				}
			}
		default:
			limit, since = s.lw.l.cfg.FrontTimeout, s.frontSeen
		}
		if left := limit - since.age(now); left > 0 {
			s.frontTimer = s.lp.Schedule(t, 0, left)
			return session.Continue
		}
		switch s.phase {
		case phaseHead:
			if c := s.conn(); c != nil && c.h2cPreface() {
				// What came is the start of the HTTP/2 preface: an
				// HTTP/1.1 408 would reach an HTTP/2 client as a broken
				// frame. It just closes (RFC 9113 §3.4).
				return session.Close
			}
			_, res := s.answerWith(ans408, true)
			if res == session.Close {
				return res
			}
			return s.self.Ready(s.self)
		default:
			return session.Close
		}
	}
	if s.backSide == nil {
		return session.Continue
	}
	if name == session.DialTimer && s.dial != nil {
		s.dial.Timeout(t, name) // the next backend, or none: connect says
		return s.self.Ready(s.self)
	}
	if s.back == nil || t != s.backToken {
		return session.Continue
	}
	if s.phase == phaseExchange && !s.reqDone && !s.respHead && len(s.x.reqOut) == 0 {
		// The backend has every byte of the request that came so far and
		// the rest is the client's to send (a slow upload, a request body
		// an HTTP/2 frame at a time): the exchange waits on the client,
		// whose own timeout applies, not on the backend.
		s.backSeen = stampOf(now)
	}
	if left := s.lw.l.cfg.BackTimeout - s.backSeen.age(now); left > 0 && !(s.reqDone && !s.respHead && s.backSeen.age(now) >= s.lw.l.cfg.BackTimeout) {
		s.backTimer = s.lp.Schedule(t, 0, left)
		return session.Continue
	}
	if s.respSent {
		return session.Close
	}
	_, res := s.backendFailed(ans504)
	if res == session.Close {
		return res
	}
	return s.self.Ready(s.self)
}

// ShuttingDown ends a cycle waiting for its next request, once it has
// waited Config.StopIdleAfter (the worker asks again every few tens of
// milliseconds); one with a request in progress, or a request that comes
// meanwhile, finishes it and closes after.
func (s *cycle) ShuttingDown() session.Result {
	if s.phase == phaseIdle && (s.fbuf == nil || s.fbuf.Empty()) &&
		s.frontSeen.age(s.lp.Now()) >= s.lw.l.cfg.StopIdleAfter {
		return session.Close
	}
	s.closeAfter = true
	return session.Continue
}

// close ends the request in progress (its Done hooks learn it was
// aborted), the backend connection and the buffers, and closes the front.
func (s *cycle) close() {
	if s.x != nil && s.headParsed && !s.x.doneRun {
		status := 0
		if s.respHead {
			status = s.x.resp.Status
		}
		s.exchangeDone(status, false, ErrExchangeAborted)
	}
	if s.backSide != nil {
		s.dropBack(false)
		s.lp.Pool().Put(s.bbuf)
		s.bbuf = nil
	}
	s.lp.Timers().Cancel(s.frontTimer)
	s.lp.Pool().Put(s.fbuf)
	s.fbuf, s.partial = nil, nil
	s.freeExchange()
}

// logAccess writes the access log line, if there is a log.
// exchangeEnded tells the Done hooks and the access log how the exchange
// ended.
func (s *cycle) exchangeEnded(err error) {
	if s.x == nil {
		return
	}
	status, answered := 0, false
	switch {
	case s.respHead:
		status = s.x.resp.Status
	case s.x.answerCode != 0:
		status, answered = s.x.answerCode, true
	}
	s.exchangeDone(status, answered, err)
	s.logAccess(status)
}

func (s *cycle) logAccess(status int) {
	log := s.lw.l.cfg.AccessLog
	if log == nil || s.x == nil {
		return
	}
	client, _ := s.SessionAddress()
	var be string
	if s.backend != nil {
		be = s.backend.Address.String()
	}
	cluster, _ := s.ClusterID()
	var method, host, path string
	if len(s.x.logLine) == s.x.logSpans[2] && s.x.logSpans[2] > 0 {
		method = string(s.x.logLine[:s.x.logSpans[0]])
		host = string(s.x.logLine[s.x.logSpans[0]:s.x.logSpans[1]])
		path = string(s.x.logLine[s.x.logSpans[1]:s.x.logSpans[2]])
	}
	log.Info("request", "client", client.String(), "method", method, "host", host, "path", path,
		"status", status, "request_bytes", s.x.reqBodyIn, "response_bytes", s.x.respBytes,
		"duration", s.lp.Now().Sub(s.x.start).String(), "connect", span(s.x.connectAt, s.x.connected),
		"response", span(s.x.connected, s.x.respAt), "cluster", cluster, "backend", be,
		"request_id", string(s.x.id[:s.x.idLen]))
	s.x.logLine, s.x.answerCode = s.x.logLine[:0], 0
}

// span is b - a for the access log, "-" when either is unknown.
func span(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return "-"
	}
	return b.Sub(a).String()
}

func (s *cycle) print(w io.Writer) {
	if s.backSide == nil {
		fmt.Fprintf(w, "phase %s, front %v, no backend, buffer %v", phaseNames[s.phase], s.fready.Ready(), s.fbuf != nil)
		return
	}
	fmt.Fprintf(w, "phase %s, front %v, back %v (connecting %v, reused %v), buffers %v/%v",
		phaseNames[s.phase], s.fready.Ready(), s.bready.Ready(), s.dial != nil && s.dial.State() == session.DialConnecting, s.reused, s.fbuf != nil, s.bbuf != nil)
}

// cookieValue finds name's value in the request's Cookie fields (RFC 6265
// §4.2.1: "name=value" pairs separated by "; "), or nil.
func cookieValue(head []byte, h *http1.Head, name string) []byte {
	for i := h.FieldIndex(head, "cookie", 0); i >= 0; i = h.FieldIndex(head, "cookie", i+1) {
		v := h.Fields[i].Value.Of(head)
		for len(v) > 0 {
			var pair []byte
			if j := bytes.IndexByte(v, ';'); j >= 0 {
				pair, v = v[:j], v[j+1:]
			} else {
				pair, v = v, nil
			}
			pair = bytes.TrimLeft(pair, " \t")
			if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
				return bytes.TrimRight(pair[len(name)+1:], " \t")
			}
		}
	}
	return nil
}

// template finds the answer body for status: the routed cluster's, then
// the listener's, else nil (the default text).
func (s *cycle) template(status int) *Answer {
	if s.route != nil && s.lw.st.clusterAnswers != nil {
		if m := s.lw.st.clusterAnswers[s.route.Action.Cluster]; m != nil {
			if a, ok := m[status]; ok {
				return &a
			}
		}
	}
	if a, ok := s.lw.l.cfg.Answers[status]; ok {
		return &a
	}
	return nil
}

// http1Line reports whether b's first line looks like an HTTP/1.x
// request line (it ends with an HTTP version), or is too short yet to
// tell.
func http1Line(b []byte) bool {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return true
	}
	line := bytes.TrimRight(b[:i], "\r")
	if bytes.HasPrefix(line, []byte("PRI ")) {
		return false // a broken HTTP/2 preface: no HTTP/1.1 answer (RFC 9113 §3.4)
	}
	// "... HTTP/d.d", whatever the version: the HTTP/1.1 parser answers
	// it (505 for one it does not speak), as on an HTTP/1.1 listener.
	v := len(line) - len(" HTTP/1.1")
	return v > 0 && string(line[v:v+6]) == " HTTP/" && isDigit(line[v+6]) && line[v+7] == '.' && isDigit(line[v+8])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// A stamp is a loop time in 8 bytes rather than time.Time's 24: the
// time since the package's epoch (monotonic when the loop's clock is).
// A connection keeps a few, and an idle one keeps every byte it has.
type stamp time.Duration

var epoch = time.Now()

func stampOf(t time.Time) stamp { return stamp(t.Sub(epoch)) }

// time is the stamp as a time.Time again.
func (t stamp) time() time.Time { return epoch.Add(time.Duration(t)) }

// age is how long before now the stamp was.
func (t stamp) age(now time.Time) time.Duration { return time.Duration(stampOf(now) - t) }

// stamp is the loop's time now.
func (s *cycle) stamp() stamp { return stampOf(s.lp.Now()) }

// held is the incomplete head kept without a buffer.
func (s *cycle) held() []byte {
	if s.partial == nil {
		return nil
	}
	return *s.partial
}

// keep replaces the bytes held with b's.
func (s *cycle) keep(b []byte) {
	if s.partial != nil {
		*s.partial = (*s.partial)[:0]
	}
	s.hold(b)
}

// hold adds b to the bytes held.
func (s *cycle) hold(b []byte) {
	if s.partial == nil {
		s.partial = new([]byte)
	}
	*s.partial = append(*s.partial, b...)
}
