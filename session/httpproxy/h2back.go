package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// HTTP/2 to the backends (see LIFECYCLE.md, "HTTP/2 backends").
//
// A cluster marked with SetClusterHTTP2 gets its requests over HTTP/2
// cleartext with prior knowledge (h2c), what gRPC servers speak. The
// cycle does not change: its back stream is then an h2BackStream, one
// stream of a connection (h2Back) that many sessions of the worker
// share. The stream takes the request head as fields from the cycle's
// editor and the body as content, and gives the response back as
// HTTP/1.1 bytes (chunked when the response has no Content-Length, so
// trailers such as grpc-status survive), its head indexed as written.

// SetClusterHTTP2 makes the requests routed to cluster reach its
// backends over HTTP/2 cleartext (h2c, prior knowledge), multiplexed on
// shared connections (one at a time per backend while it has room, more
// when the server's stream limit is reached). It applies to the requests
// that start after it, until it is turned off or the cluster removed. It
// is a command (a [session.Worker] or a whole [session.Proxy]): safe
// from any goroutine.
func SetClusterHTTP2(c session.Commands, cluster string, on bool) error {
	return c.Exec(func(lp *session.Loop) error {
		st := stateOf(lp)
		if !on {
			delete(st.h2Clusters, cluster)
			return nil
		}
		if st.h2Clusters == nil {
			st.h2Clusters = map[string]bool{}
		}
		st.h2Clusters[cluster] = true
		return nil
	})
}

// h2Back is one HTTP/2 connection to a backend.
type h2Back struct {
	lp      *session.Loop
	st      *workerState
	b       *backend.Backend
	sock    protocol.TCPSocket
	token   eventloop.Token
	ready   protocol.Readiness
	conn    *h2.ClientConn
	partial []byte
	streams map[uint32]*h2BackStream
	waiting []*h2BackStream // wait for room to open their stream
	news    newsQueue       // streams with news for their session

	connecting bool
	running    bool
	kicked     bool
	closed     bool
	timer      timer.Handle
	idleAt     time.Time
	began      time.Time // the connect's start
	last       time.Time
	idle       time.Duration
	fields     []h2.HeaderField
}

// h2BackStream is one request on an h2Back, and the backend socket of
// the session that makes it.
type h2BackStream struct {
	news // the session's token for this stream (its backToken), what to deliver; closed: the session let go
	c    *h2Back
	id   uint32 // 0 until opened

	// The request: its head as fields from the session's editor
	// (takeRequest), then its body's content as DATA.
	kind    http1.BodyKind
	left    int64
	state   uint8            // rsHead, rsBody, rsDone (request side)
	pending []h2.HeaderField // the request head, until the stream opens

	// The response, as HTTP/1.1 bytes for the session. Its final head,
	// when it is the first thing the stream gives, is indexed in the
	// session's exchange as it is written (x.resp, x.respBuilt): the
	// session does not parse it again.
	x        *exchange
	gave     bool // bytes of the response were written to resp
	resp     []byte
	credit   int
	chunked  bool
	ended    bool // the response is complete
	reset    bool
	waits    bool // in the connection's waiting list
	refused  bool // the server refused the stream unprocessed (RFC 9113 §8.7): safe to send again
	connFail bool // the connection never came up: a connect failure, not a broken exchange
}

// openH2Stream gives s a stream to backend b, on a connection with room
// or a new one. The stream's token is registered to s.
func (s *cycle) openH2Stream(b *backend.Backend) (*h2BackStream, eventloop.Token, error) {
	st := s.lw.st
	var c *h2Back
	for _, x := range st.h2conns[b] {
		if !x.closed && x.conn.CanOpen() {
			c = x
			break
		}
	}
	if c == nil {
		var err error
		if c, err = s.dialH2(b); err != nil {
			return nil, 0, err
		}
	}
	t, err := s.lp.Register(-1, s.self)
	if err != nil {
		return nil, 0, err
	}
	bs := &h2BackStream{c: c, x: s.x}
	bs.token = t
	return bs, t, nil
}

// dialH2 starts a new connection to b.
func (s *cycle) dialH2(b *backend.Backend) (*h2Back, error) {
	fd, err := protocol.Connect(b.Address)
	b.ConnectStarted() // the connection's own attempt; streams count apart
	if err != nil {
		b.ConnectFailed(s.lp.Now())
		return nil, err
	}
	c := &h2Back{lp: s.lp, st: s.lw.st, b: b, sock: protocol.NewTCPSocket(fd), connecting: true,
		streams: map[uint32]*h2BackStream{}, idle: s.lw.l.cfg.IdleBackendTimeout, idleAt: s.lp.Now(), began: s.lp.Now(), last: s.lp.Now()}
	t, err := s.lp.Register(fd, c)
	if err != nil {
		c.sock.Close()
		b.Released()
		return nil, err
	}
	protocol.SetNoDelay(fd, true)
	c.token = t
	c.conn = h2.NewClientConn(h2.ClientConfig{}, c)
	c.conn.Timeout(s.lp.Now()) // starts its clock
	if s.lw.st.h2conns == nil {
		s.lw.st.h2conns = map[*backend.Backend][]*h2Back{}
	}
	s.lw.st.h2conns[b] = append(s.lw.st.h2conns[b], c)
	c.timer = s.lp.Schedule(t, 0, s.lw.l.cfg.ConnectTimeout)
	s.lw.stats.newBackend.Add(1)
	return c, nil
}

// --- the connection: a ProxySession of its own ---------------------------

func (c *h2Back) Protocol() session.Protocol             { return session.HTTP }
func (c *h2Back) FrontendToken() eventloop.Token         { return c.token }
func (c *h2Back) LastEvent() time.Time                   { return c.last }
func (c *h2Back) ClusterID() (string, bool)              { return "", false }
func (c *h2Back) SessionAddress() (netip.AddrPort, bool) { return c.b.Address, true }
func (c *h2Back) ShuttingDown() session.Result           { c.conn.Shutdown(c.lp.Now()); return c.afterRun() }
func (c *h2Back) PrintSession(w io.Writer) {
	fmt.Fprintf(w, "h2 backend %v: streams %d, connecting %v, ready %v", c.b.Address, len(c.streams), c.connecting, c.ready.Ready())
}

// UpdateReadiness implements session.ProxySession.
func (c *h2Back) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	c.last = c.lp.Now()
	c.ready.Update(r)
}

// Ready implements session.ProxySession.
func (c *h2Back) Ready(self session.ProxySession) session.Result {
	c.kicked = false
	c.run()
	return c.afterRun()
}

// run moves frames both ways; streams that write meanwhile need no kick.
func (c *h2Back) run() {
	c.running = true
	c.runOnce()
	c.running = false
}

func (c *h2Back) afterRun() session.Result {
	if c.closed || c.conn.Done() && len(c.conn.Output()) == 0 {
		return session.Close
	}
	return session.Continue
}

func (c *h2Back) runOnce() {
	for round := 0; round < 16; round++ {
		progress := false
		if c.connecting {
			if !c.ready.Writable() {
				return
			}
			if err := protocol.ConnectResult(c.sock.Fd()); err != nil {
				c.b.ConnectFailed(c.lp.Now())
				c.fail()
				return
			}
			c.connecting = false
			now := c.lp.Now()
			c.b.ConnectSucceeded(now, now.Sub(c.began))
			c.b.Released() // streams, not the connection, count as active
			c.schedule()
		}
		got, ended := readFrames(c.lp, &c.sock, &c.ready, &c.partial, c.conn)
		if ended {
			c.fail()
			return
		}
		progress = got
		c.openWaiting()
		for rounds := 0; !c.news.empty() && rounds < 16; rounds++ {
			progress = c.news.deliverRound(c.lp) || progress
		}
		if c.flush() {
			progress = true
		}
		if !progress {
			break
		}
	}
	if len(c.streams) > 0 || len(c.waiting) > 0 {
		c.idleAt = c.lp.Now()
	}
}

// flush writes the connection's output.
func (c *h2Back) flush() bool {
	if c.connecting {
		return false
	}
	wrote, failed := writeOut(&c.sock, &c.ready, c.conn)
	if failed {
		c.fail()
	}
	return wrote
}

// fail ends the connection: every stream is reset (its session answers
// 502 or retries), and the connection closes.
func (c *h2Back) fail() {
	if c.closed {
		return
	}
	if c.connecting {
		for _, bs := range c.streams {
			bs.connFail = true
		}
	}
	c.conn.Close() // StreamReset(CANCEL) for the open streams
	for _, bs := range c.waiting {
		bs.reset, bs.connFail, bs.waits = true, c.connecting, false
		c.queue(bs, eventloop.Readable|eventloop.Writable)
	}
	c.waiting = nil
	for rounds := 0; !c.news.empty() && rounds < 16; rounds++ {
		c.news.deliverRound(c.lp)
	}
	c.closed = true
}

func (c *h2Back) queue(bs *h2BackStream, ev eventloop.Ready) { c.news.add(&bs.news, ev) }

// kick runs the connection at the end of the batch: what its streams
// wrote goes out in one write.
func (c *h2Back) kick() {
	if !c.kicked && !c.running && !c.closed {
		c.kicked = true
		c.lp.Defer(c.token, c)
	}
}

// openWaiting gives streams that waited for room their turn.
func (c *h2Back) openWaiting() {
	for len(c.waiting) > 0 && c.conn.CanOpen() {
		bs := c.waiting[0]
		c.waiting = c.waiting[1:]
		bs.waits = false
		if !bs.closed {
			bs.open()
			c.queue(bs, eventloop.Writable)
		}
	}
}

func (c *h2Back) schedule() {
	c.lp.Timers().Cancel(c.timer)
	next := c.idleAt.Add(c.idle)
	if d := c.conn.Deadline(); !d.IsZero() && d.Before(next) {
		next = d
	}
	c.timer = c.lp.Schedule(c.token, 0, max(next.Sub(c.lp.Now()), time.Millisecond))
}

// Timeout implements session.ProxySession: the connect timeout, the
// ClientConn's timers, and the idle timeout.
func (c *h2Back) Timeout(t eventloop.Token, _ eventloop.TimerName) session.Result {
	now := c.lp.Now()
	if c.connecting {
		c.b.ConnectFailed(now)
		c.fail()
		return session.Close
	}
	if d := c.conn.Deadline(); !d.IsZero() && !now.Before(d) {
		c.conn.Timeout(now)
	}
	if len(c.streams) == 0 && len(c.waiting) == 0 && now.Sub(c.idleAt) >= c.idle {
		return session.Close
	}
	c.run()
	if res := c.afterRun(); res == session.Close {
		return res
	}
	c.schedule()
	return session.Continue
}

// Close implements session.ProxySession.
func (c *h2Back) Close() {
	if !c.closed {
		c.fail()
	}
	c.closed = true
	list := c.st.h2conns[c.b]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.st.h2conns, c.b)
	} else {
		c.st.h2conns[c.b] = list
	}
	c.lp.Timers().Cancel(c.timer)
	c.lp.Release(c.token, c.sock.Fd())
	c.sock.Close()
}

// ResponseHeaders implements h2.ClientHandler.
func (c *h2Back) ResponseHeaders(id uint32, fields []h2.HeaderField, endStream, trailers bool) {
	bs := c.streams[id]
	if bs == nil {
		return
	}
	if trailers {
		if bs.chunked {
			bs.resp = appendLastChunk(bs.resp, fields)
		}
		bs.ended = true
		c.queue(bs, eventloop.Readable)
		return
	}
	// ValidateResponse made :status the first field, three digits.
	status, _ := strconv.Atoi(fields[0].Value)
	bs.writeHead(status, fields, endStream)
	c.queue(bs, eventloop.Readable)
}

// writeHead writes a response head as HTTP/1.1 bytes for the session,
// with an http1.Builder. The final head, when it is the first thing the
// stream gives, is indexed in the session's exchange as it is written
// (x.resp, x.respBuilt): the session does not parse it again. A final
// head without Content-Length gets chunked framing, and announced
// trailers (a "trailer" field) need it too, which a Content-Length
// would rule out: that length is dropped.
func (bs *h2BackStream) writeHead(status int, fields []h2.HeaderField, endStream bool) {
	x, final := bs.x, status >= 200
	h, w := &bs.c.st.spareHead, &bs.c.st.build
	w.Limits = http1.Limits{}
	if x != nil {
		w.Limits = x.rparser.Limits
	}
	index := final && !bs.gave && x != nil
	if index {
		h = &x.resp
	}
	size := 64
	announced := false
	for _, f := range fields {
		size += len(f.Name) + len(f.Value) + 4
		announced = announced || f.Name == "trailer" && !endStream
	}
	w.Response(make([]byte, 0, size), h, status, http.StatusText(status))
	hasLength := false
	for _, f := range fields {
		switch {
		case f.IsPseudo():
			continue
		case f.Name == "content-length":
			if announced {
				continue
			}
			hasLength = true
		}
		w.Field(f.Name, f.Value)
	}
	if final {
		switch {
		case endStream && !hasLength && status != 204 && status != 304:
			w.Field("Content-Length", "0")
		case !endStream && !hasLength:
			w.Field("Transfer-Encoding", "chunked")
			bs.chunked = true
		}
	}
	head, err := w.End()
	if index {
		bs.resp, x.respBuildErr, x.respBuilt = head, err, true
	} else {
		bs.resp = append(bs.resp, head...) // after an interim head still unread
	}
	bs.gave = true
	if endStream {
		bs.ended = true
	}
}

// ResponseData implements h2.ClientHandler.
func (c *h2Back) ResponseData(id uint32, data []byte, endStream bool) {
	bs := c.streams[id]
	if bs == nil {
		c.conn.Consumed(id, len(data))
		return
	}
	if len(data) > 0 {
		bs.gave = true
		bs.resp = appendChunk(bs.resp, data, bs.chunked)
		bs.credit += len(data)
	}
	if endStream {
		if bs.chunked {
			bs.resp = appendLastChunk(bs.resp, nil)
		}
		bs.ended = true
	}
	c.queue(bs, eventloop.Readable)
}

// StreamReset implements h2.ClientHandler.
func (c *h2Back) StreamReset(id uint32, code h2.ErrCode) {
	bs := c.streams[id]
	if bs == nil {
		return
	}
	delete(c.streams, id)
	bs.reset = true
	bs.refused = code == h2.ErrCodeRefusedStream // by RST_STREAM, or above a GOAWAY's last stream
	c.queue(bs, eventloop.Readable|eventloop.Writable)
}

// StreamWritable implements h2.ClientHandler.
func (c *h2Back) StreamWritable(id uint32) {
	if bs := c.streams[id]; bs != nil {
		c.queue(bs, eventloop.Writable)
	}
}

// --- the stream: the session's backend socket ----------------------------

// takeRequest implements backStream: the request head, as the session
// edited it, becomes the stream's HEADERS (RFC 9113 §8.3.1: Host becomes
// :authority, no connection-specific fields, TE only as "trailers"),
// sent when the connection has room for a stream.
func (bs *h2BackStream) takeRequest(e *http1.Editor, method []byte, kind http1.BodyKind, left int64) headTaken {
	in := &bs.c.st.intern
	host, _ := e.Get("host")
	fields := make([]h2.HeaderField, 0, 16)
	fields = append(fields,
		h2.HeaderField{Name: ":method", Value: in.str(method)},
		h2.HeaderField{Name: ":scheme", Value: "http"},
		h2.HeaderField{Name: ":authority", Value: in.str(host)},
		h2.HeaderField{Name: ":path", Value: in.str(e.Target())})
	e.EachField(func(name, value []byte) { fields = appendH2Field(fields, in, name, value, true) })
	bs.pending, bs.kind, bs.left = fields, kind, left
	if !bs.reset && !bs.c.closed {
		bs.open()
		bs.c.kick()
	}
	return headSent
}

// Write implements protocol.Socket: the request's content becomes DATA.
// It answers WouldBlock until the stream is open and while its window
// or the connection's output is full.
func (bs *h2BackStream) Write(p []byte) (int, protocol.SocketResult) {
	n, r := bs.body(p)
	bs.c.kick()
	return n, r
}

// Writev implements protocol.Socket.
func (bs *h2BackStream) Writev(bufs [][]byte) (int, protocol.SocketResult) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		n, r := bs.body(b)
		total += n
		if r != protocol.Continue {
			bs.c.kick()
			return total, r
		}
	}
	bs.c.kick()
	return total, protocol.Continue
}

// open sends the request head once the connection has room; until then
// the stream waits in the connection's list.
func (bs *h2BackStream) open() bool {
	c := bs.c
	if bs.id != 0 || bs.pending == nil {
		return bs.id != 0
	}
	if !c.conn.CanOpen() {
		if !bs.waits {
			bs.waits = true
			c.waiting = append(c.waiting, bs)
		}
		return false
	}
	end := bs.kind == http1.BodyNone || bs.kind == http1.BodyLength && bs.left == 0
	id, err := c.conn.OpenStream(bs.pending, end)
	if err != nil {
		bs.reset = true
		return false
	}
	bs.id = id
	bs.pending = nil
	c.streams[id] = bs
	if end {
		bs.state = rsDone
	} else {
		bs.state = rsBody
	}
	return true
}

// writable reports whether the stream can take request content now:
// Continue once it is open, WouldBlock while it waits for room to open,
// Closed when it is gone.
func (bs *h2BackStream) writable() protocol.SocketResult {
	switch {
	case bs.reset || bs.c.closed:
		return protocol.Closed
	case bs.open():
		return protocol.Continue
	case bs.reset:
		return protocol.Closed
	}
	return protocol.WouldBlock
}

// body sends request content as DATA.
func (bs *h2BackStream) body(p []byte) (int, protocol.SocketResult) {
	c := bs.c
	if r := bs.writable(); r != protocol.Continue {
		return 0, r
	}
	if bs.state != rsBody {
		return len(p), protocol.Continue // nothing follows the end of a request
	}
	switch bs.kind {
	case http1.BodyLength:
		n := int(min(int64(len(p)), bs.left))
		w := c.conn.WriteData(bs.id, p[:n], int64(n) == bs.left)
		bs.left -= int64(w)
		if bs.left == 0 {
			bs.state = rsDone
			return w, protocol.Continue
		}
		if w < n {
			return w, protocol.WouldBlock
		}
		return w, protocol.Continue
	default: // chunked: a request body without a length cannot be until-close
		w := c.conn.WriteData(bs.id, p, false)
		if w < len(p) {
			return w, protocol.WouldBlock
		}
		return w, protocol.Continue
	}
}

// endBody implements backStream: a chunked body's end, with its trailer
// section as a trailing HEADERS frame, else an empty DATA frame with
// END_STREAM.
func (bs *h2BackStream) endBody(trailers []byte) protocol.SocketResult {
	c := bs.c
	if r := bs.writable(); r != protocol.Continue {
		return r
	}
	if bs.state != rsBody {
		return protocol.Continue
	}
	fields := trailerFields(c.fields[:0], &c.st.intern, trailers)
	c.fields = fields[:0]
	if len(fields) == 0 || c.conn.WriteTrailers(bs.id, fields) != nil {
		c.conn.WriteData(bs.id, nil, true)
	}
	bs.state = rsDone
	c.kick()
	return protocol.Continue
}

// Read implements protocol.Socket: the response as HTTP/1.1 bytes.
func (bs *h2BackStream) Read(p []byte) (int, protocol.SocketResult) {
	n := copy(p, bs.resp)
	bs.resp = bs.resp[n:]
	if len(bs.resp) == 0 {
		bs.resp = nil
	}
	if bs.credit > 0 && n > 0 && bs.id != 0 {
		k := min(bs.credit, n)
		bs.credit -= k
		bs.c.conn.Consumed(bs.id, k)
		bs.c.kick()
	}
	if n == len(p) && n > 0 {
		return n, protocol.Continue
	}
	if n == 0 && bs.reset && !bs.ended {
		return 0, protocol.Error
	}
	return n, protocol.WouldBlock
}

// CloseWrite implements protocol.Socket.
func (bs *h2BackStream) CloseWrite() error { return nil }

// unprocessed implements backStream.
func (bs *h2BackStream) unprocessed() bool { return bs.refused }

// neverUp implements backStream.
func (bs *h2BackStream) neverUp() bool { return bs.connFail }

// release implements backStream: a stream is never pooled; its
// connection stays for the next.
func (bs *h2BackStream) release(s *cycle, reuse bool) {
	s.lp.Release(s.backToken, -1)
	bs.Close()
}

// Fd implements protocol.Socket: a stream has no descriptor.
func (bs *h2BackStream) Fd() int { return -1 }

// Close implements protocol.Socket: the session is done with the
// stream; one not complete is reset.
func (bs *h2BackStream) Close() error {
	if bs.closed {
		return nil
	}
	bs.closed = true
	c := bs.c
	if bs.id != 0 {
		if _, open := c.streams[bs.id]; open {
			delete(c.streams, bs.id)
			if !c.closed && !(bs.ended && bs.state == rsDone) {
				c.conn.Reset(bs.id, h2.ErrCodeCancel)
			}
		}
		if bs.credit > 0 && !c.closed {
			c.conn.Consumed(bs.id, bs.credit)
		}
		c.kick()
	}
	if bs.waits {
		for i, x := range c.waiting {
			if x == bs {
				c.waiting = append(c.waiting[:i], c.waiting[i+1:]...)
				break
			}
		}
		bs.waits = false
	}
	bs.resp, bs.pending, bs.x = nil, nil, nil
	return nil
}

var (
	_ protocol.Socket      = (*h2BackStream)(nil)
	_ h2.ClientHandler     = (*h2Back)(nil)
	_ session.ProxySession = (*h2Back)(nil)
)
