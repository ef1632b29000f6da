package httpproxy

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/session"
)

// HTTP/2 clients (see LIFECYCLE.md, "HTTP/2: a connection and its streams").
//
// A client connection speaking HTTP/2 is a Session in connH2 holding an
// h2Front: an h2.ServerConn fed with what the socket reads. Each request
// stream gets a session of its own, an h2Child: a cycle (the same
// request cycle an HTTP/1.1 connection runs) whose front stream is the
// h2Stream, with no socket, TLS or connection state of its own. The
// stream gives the cycle the request as HTTP/1.1 bytes built from
// HEADERS and DATA, takes the final response head as fields straight
// from the cycle's editor, and turns the body into DATA frames. So
// routing, hooks, edits, answers, retries, pooled backend connections,
// timeouts and the access log are the same per stream as per HTTP/1.1
// request. A child has a token of its own (no descriptor): its backend
// connection's events and its timers reach it directly.
//
// Re-entrancy: the ServerConn's callbacks only record what changed for
// a stream; the children are driven afterwards, from the connection's
// own Ready, never from inside another child's.

// h2Front is the HTTP/2 side of a client connection.
type h2Front struct {
	s       *Session
	conn    *h2.ServerConn
	partial []byte // an incomplete frame kept between reads
	streams map[uint32]*h2Stream
	news    newsQueue // streams with news for their child
	kicked  bool      // the connection's session is deferred to the end of the batch
	running bool      // its run is on the stack: it flushes and drives before returning
	closing bool
	stopped bool // Shutdown was called
	broken  bool // the client's socket failed
	idleAt  time.Time
	timerAt time.Time // when the connection's timer fires
	shrunk  bool      // the idle connection's buffers were given back
}

// h2Child is the session of one request stream: a cycle whose front is
// the stream, allocated together with it. It has no connection of its
// own: no socket, TLS or connection state.
type h2Child struct {
	cycle
	st h2Stream
}

// h2Stream is one request stream, and the front socket of its child.
type h2Stream struct {
	news  // the child's token and what to deliver to it; closed: the child is gone
	f     *h2Front
	id    uint32
	child *h2Child

	// The request, as HTTP/1.1 bytes for the child; reqBuf is the array
	// under it, kept for the next stream when the child is reused.
	req     []byte
	reqBuf  []byte
	credit  int // DATA octets in req not yet given back to flow control
	chunked bool
	reqEnd  bool
	reset   bool // the client or the connection reset the stream
	isHead  bool

	// The response: its head as fields from the cycle (takeResponse),
	// or as HTTP/1.1 bytes (an interim response, an answer of the
	// proxy's own); its body's content, as DATA.
	rstate  uint8
	hbuf    []byte
	rparser http1.Parser
	resp    http1.Head
	kind    http1.BodyKind
	left    int64 // Content-Length left
	ended   bool  // END_STREAM or RST_STREAM sent
}

const (
	rsHead uint8 = iota
	rsBody
	rsDone
)

// startH2 turns the session into an HTTP/2 connection. initial holds
// bytes already read (the h2c preface and what followed it).
func (s *Session) startH2(initial []byte) (bool, session.Result) {
	f := &h2Front{s: s, streams: map[uint32]*h2Stream{}, idleAt: s.lp.Now()}
	f.conn = h2.NewServerConn(s.lw.l.cfg.HTTP2, f)
	s.h2 = f
	s.state = connH2
	s.lw.stats.h2Conns.Add(1)
	if len(initial) > 0 {
		f.partial = append(f.partial, initial...)
	}
	s.releaseFront()
	s.partial = nil
	s.freeExchange()
	if len(f.partial) > 0 {
		n, err := f.conn.Feed(f.partial, s.lp.Now())
		f.partial = f.partial[:copy(f.partial, f.partial[n:])]
		if err != nil {
			f.partial = nil
		}
	}
	f.schedule()
	return true, session.Continue
}

// run reads frames, drives the streams and flushes the output until
// nothing moves.
func (f *h2Front) run() (bool, session.Result) {
	f.kicked, f.running = false, true
	progress, res := f.step()
	f.running = false
	return progress, res
}

func (f *h2Front) step() (bool, session.Result) {
	s := f.s
	progress := false
	if !f.broken {
		got, ended := readFrames(s.lp, s.front, &s.fready, &f.partial, f.conn)
		if got {
			progress = true
			s.frontSeen = s.stamp()
		}
		f.broken = ended
	}
	for rounds := 0; !f.news.empty() && rounds < 16; rounds++ {
		progress = f.news.deliverRound(s.lp) || progress
		f.flush()
	}
	if f.flush() {
		progress = true
	}
	if f.broken || f.conn.Done() && len(f.conn.Output()) == 0 {
		return false, session.Close // closeGently lingers when it may
	}
	if f.conn.Streams() > 0 || len(f.streams) > 0 {
		f.idleAt = s.lp.Now()
		if f.shrunk {
			f.shrunk = false
			f.schedule() // a second of idleness gives the buffers back
		}
	}
	if d := f.conn.Deadline(); !d.IsZero() && d.Before(f.timerAt) {
		f.schedule() // a deadline earlier than the timer's (SETTINGS ack, a stall)
	}
	return progress, session.Continue
}

// flush writes the connection's output to the client.
func (f *h2Front) flush() bool {
	if f.broken {
		return false
	}
	wrote, failed := writeOut(f.s.front, &f.s.fready, f.conn)
	f.broken = failed
	return wrote
}

// queue records news for a stream's child.
func (f *h2Front) queue(st *h2Stream, ev eventloop.Ready) { f.news.add(&st.news, ev) }

// kick makes the connection's session run at the end of the batch: a
// child that wrote frames or closed runs on its backend's events, when
// the connection would not run otherwise. The frames then go out in one
// write, and streams that got news meanwhile are driven.
func (f *h2Front) kick() {
	if !f.kicked && !f.closing && !f.running {
		f.kicked = true
		f.s.lp.Defer(f.s.frontToken, f.s)
	}
}

// schedule sets the connection's timer: the ServerConn's next deadline,
// or the idle timeout when no stream is open.
func (f *h2Front) schedule() {
	s := f.s
	next := f.idleAt.Add(s.lw.l.cfg.FrontTimeout)
	if !f.shrunk {
		next = f.idleAt.Add(min(time.Second, s.lw.l.cfg.FrontTimeout))
	}
	if d := f.conn.Deadline(); !d.IsZero() && d.Before(next) {
		next = d
	}
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, max(next.Sub(s.lp.Now()), time.Millisecond))
	f.timerAt = next
}

// timeout runs the ServerConn's timers and the idle timeout.
func (f *h2Front) timeout() session.Result {
	s := f.s
	now := s.lp.Now()
	if d := f.conn.Deadline(); !d.IsZero() && !now.Before(d) {
		f.conn.Timeout(now)
	}
	if len(f.streams) == 0 && !f.shrunk && now.Sub(f.idleAt) >= time.Second && len(f.conn.Output()) == 0 {
		// Idle for a second: give the buffers back rather than after each
		// burst, which would regrow them for the next.
		f.conn.ShrinkBuffers()
		f.streams = nil // a map keeps its table once grown
		if len(f.news.list) == 0 {
			f.news = newsQueue{}
		}
		f.shrunk = true
	}
	if len(f.streams) == 0 && now.Sub(f.idleAt) >= s.lw.l.cfg.FrontTimeout {
		if f.stopped {
			return session.Close
		}
		f.shutdown()
	}
	_, res := f.run()
	if res == session.Close {
		return res
	}
	f.schedule()
	return session.Continue
}

// shutdown starts the graceful GOAWAY drain.
func (f *h2Front) shutdown() {
	if !f.stopped {
		f.stopped = true
		f.conn.Shutdown(f.s.lp.Now())
	}
}

// close ends every stream's child with the connection.
func (f *h2Front) close() {
	if f.closing {
		return
	}
	f.closing = true
	st := f.conn.Stats()
	f.s.lw.stats.h2Streams.Add(st.StreamsOpened)
	fl := st.Floods
	if n := fl.RapidReset + fl.MadeYouReset + fl.Continuation + fl.Ping + fl.Settings + fl.EmptyData + fl.WindowUpdate + fl.ControlQueue; n > 0 {
		f.s.lw.stats.h2Floods.Add(n)
	}
	// In stream order, not the map's: what the world sees of the
	// closes (backend connections ending) is then the same every run.
	ids := make([]uint32, 0, len(f.streams))
	for id := range f.streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if stream := f.streams[id]; stream != nil && !stream.closed {
			f.s.lp.CloseSession(stream.child)
		}
	}
	f.streams = nil
}

// Headers implements h2.Handler: a request head opens a stream and its
// child; trailers end a chunked body.
func (f *h2Front) Headers(id uint32, fields []h2.HeaderField, endStream, trailers bool) {
	if trailers {
		st := f.streams[id]
		if st == nil {
			return
		}
		if st.chunked {
			st.req = appendLastChunk(st.req, fields)
		}
		st.reqEnd = true
		f.queue(st, eventloop.Readable)
		return
	}
	s := f.s
	now := s.lp.Now()
	child := s.lw.st.newChild()
	st := &child.st
	st.f, st.id = f, id
	child.cycle = cycle{
		Peer:       s.Peer,
		source:     s.source,
		last:       stampOf(now),
		self:       child,
		lp:         s.lp,
		lw:         s.lw,
		front:      st,
		secure:     s.secure,
		localPort:  s.localPort,
		overLimit:  s.overLimit,
		closeAfter: true, // one request per stream
		frontSeen:  stampOf(now),
	}
	t, err := s.lp.Register(-1, child)
	if err != nil {
		f.conn.Reset(id, h2.ErrCodeRefusedStream)
		return
	}
	st.child, st.token = child, t
	child.frontToken = t // its request timer starts when it reads the head, below
	if f.streams == nil {
		f.streams = make(map[uint32]*h2Stream, 1) // given back after a second idle
	}
	f.streams[id] = st
	child.begin()
	st.buildRequest(fields, endStream, child.x)
	f.queue(st, eventloop.Readable|eventloop.Writable)
}

// Data implements h2.Handler.
func (f *h2Front) Data(id uint32, data []byte, endStream bool) {
	st := f.streams[id]
	if st == nil {
		f.conn.Consumed(id, len(data))
		return
	}
	if len(st.req) == 0 {
		st.req = st.reqBuf[:0] // what the child took leaves room
	}
	if len(data) > 0 {
		st.req = appendChunk(st.req, data, st.chunked)
		st.credit += len(data)
	}
	if endStream {
		if st.chunked {
			st.req = appendLastChunk(st.req, nil)
		}
		st.reqEnd = true
	}
	if cap(st.req) > cap(st.reqBuf) {
		st.reqBuf = st.req[:0] // it grew: a new array, st.req at its start
	}
	f.queue(st, eventloop.Readable)
}

// StreamReset implements h2.Handler.
func (f *h2Front) StreamReset(id uint32, code h2.ErrCode) {
	if st := f.streams[id]; st != nil {
		st.reset, st.ended = true, true
		f.queue(st, eventloop.Readable|eventloop.Error)
	}
}

// StreamWritable implements h2.Handler.
func (f *h2Front) StreamWritable(id uint32) {
	if st := f.streams[id]; st != nil {
		f.queue(st, eventloop.Writable)
	}
}

// buildRequest writes the HTTP/1.1 request head for a stream's fields
// (RFC 9113 §8.3.1: :authority stands for Host, cookie crumbs are joined
// with "; " (§8.2.3); without Content-Length a body is sent chunked),
// indexing it in x.req as it goes (http1.Builder), so that the child's
// cycle does not parse it again.
func (st *h2Stream) buildRequest(fields []h2.HeaderField, endStream bool, x *exchange) {
	var method, path, authority string
	hasLength, hasHost := false, false
	size := 64
	for _, fl := range fields {
		switch fl.Name {
		case ":method":
			method = fl.Value
		case ":path":
			path = fl.Value
		case ":authority":
			authority = fl.Value
		case "content-length":
			hasLength = true
		case "host":
			hasHost = true
		}
		size += len(fl.Name) + len(fl.Value) + 4
	}
	st.isHead = method == "HEAD"
	target := path
	if method == "CONNECT" {
		target = authority
	}
	w := &st.f.s.lw.st.build
	w.Limits = x.parser.Limits
	buf := st.reqBuf[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	w.Request(buf, &x.req, method, target)
	if authority != "" {
		w.Field("Host", authority)
	}
	cookies := 0
	for _, fl := range fields {
		if fl.IsPseudo() || fl.Name == "host" && (authority != "" || !hasHost) {
			continue
		}
		if fl.Name == "cookie" {
			cookies++
			continue
		}
		w.Field(fl.Name, fl.Value)
	}
	if cookies > 0 {
		w.Field("Cookie", joinCookies(fields, cookies))
	}
	if !endStream && !hasLength {
		w.Field("Transfer-Encoding", "chunked")
		st.chunked = true
	}
	st.req, x.buildErr = w.End()
	st.reqBuf = st.req[:0]
	x.built = true
	st.reqEnd = endStream
}

// joinCookies joins the cookie crumbs of a request (RFC 9113 §8.2.3).
func joinCookies(fields []h2.HeaderField, n int) string {
	if n == 1 {
		for _, fl := range fields {
			if fl.Name == "cookie" {
				return fl.Value
			}
		}
	}
	var b strings.Builder
	for _, fl := range fields {
		if fl.Name == "cookie" {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(fl.Value)
		}
	}
	return b.String()
}

// Read implements protocol.Socket for the child: the request bytes.
func (st *h2Stream) Read(p []byte) (int, protocol.SocketResult) {
	if st.reset {
		return 0, protocol.Error
	}
	n := copy(p, st.req)
	st.req = st.req[n:]
	if len(st.req) == 0 {
		st.req = nil
	}
	if st.credit > 0 && n > 0 {
		// Give the window back as the child takes the bytes (framing
		// octets make this slightly generous, never stingy).
		c := min(st.credit, n)
		st.credit -= c
		st.f.conn.Consumed(st.id, c)
		st.f.kick() // a WINDOW_UPDATE may be waiting to go out
	}
	if n == len(p) && n > 0 {
		return n, protocol.Continue
	}
	return n, protocol.WouldBlock
}

// Write implements protocol.Socket for the child: response bytes, turned
// into frames. It answers WouldBlock when the stream's window or the
// connection's output is full; StreamWritable brings the child back.
func (st *h2Stream) Write(p []byte) (int, protocol.SocketResult) {
	if st.reset || st.f.closing {
		return 0, protocol.Closed
	}
	n, r := st.convert(p)
	st.f.kick()
	return n, r
}

// Writev implements protocol.Socket.
func (st *h2Stream) Writev(bufs [][]byte) (int, protocol.SocketResult) {
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if st.reset || st.f.closing {
			return total, protocol.Closed
		}
		n, r := st.convert(b)
		total += n
		if r != protocol.Continue {
			st.f.kick()
			return total, r
		}
	}
	st.f.kick()
	return total, protocol.Continue
}

// convert turns HTTP/1.1 response bytes into frames, as far as the
// windows allow.
func (st *h2Stream) convert(p []byte) (int, protocol.SocketResult) {
	conn := st.f.conn
	done := 0
	for done < len(p) {
		switch st.rstate {
		case rsHead:
			// Heads are short; collect one whole before encoding it.
			st.hbuf = append(st.hbuf, p[done:]...)
			ok, err := st.rparser.Parse(st.hbuf, http1.Response, &st.resp)
			if err != nil {
				st.fail()
				return done, protocol.Error
			}
			if !ok {
				return len(p), protocol.Continue
			}
			used := st.resp.Len - (len(st.hbuf) - (len(p) - done))
			done += used
			head := st.hbuf[:st.resp.Len]
			fields := st.responseFields(head)
			status := st.resp.Status
			if status >= 100 && status < 200 {
				// An interim response (100 Continue, 103 Early Hints);
				// 101 cannot happen: HTTP/2 requests carry no Upgrade.
				if status != 101 {
					conn.WriteHeaders(st.id, fields, false)
				}
				st.hbuf = st.hbuf[:0]
				st.rparser.Reset()
				continue
			}
			st.kind, st.left = st.resp.Body(st.isHead, false)
			if st.kind == http1.BodyChunked {
				// Only heads the cycle did not take come as bytes: its
				// answers, which have a length.
				st.fail()
				return done, protocol.Error
			}
			end := st.kind == http1.BodyNone || st.kind == http1.BodyLength && st.left == 0
			if err := conn.WriteHeaders(st.id, fields, end); err != nil {
				st.fail()
				return done, protocol.Error
			}
			st.hbuf = nil
			if end {
				st.finish(false)
			} else {
				st.rstate = rsBody
			}
		case rsBody:
			n, r := st.body(p[done:])
			done += n
			if r != protocol.Continue {
				return done, r
			}
		case rsDone:
			return len(p), protocol.Continue // nothing follows a response on a stream
		}
	}
	return done, protocol.Continue
}

// body sends response content as DATA.
func (st *h2Stream) body(p []byte) (int, protocol.SocketResult) {
	conn := st.f.conn
	switch st.kind {
	case http1.BodyLength:
		n := int(min(int64(len(p)), st.left))
		w := conn.WriteData(st.id, p[:n], int64(n) == st.left)
		st.left -= int64(w)
		if st.left == 0 {
			st.finish(true)
			return w, protocol.Continue
		}
		if w < n {
			return w, protocol.WouldBlock
		}
		return w, protocol.Continue
	default: // chunked, or until the backend closes: endBody ends it
		w := conn.WriteData(st.id, p, false)
		if w < len(p) {
			return w, protocol.WouldBlock
		}
		return w, protocol.Continue
	}
}

// endBody implements frontStream: a body without a length ends, its
// trailer section as a HEADERS frame with END_STREAM, else an empty DATA
// frame with it.
func (st *h2Stream) endBody(trailers []byte) protocol.SocketResult {
	if st.ended || st.rstate != rsBody {
		return protocol.Continue
	}
	if len(trailers) > 0 {
		fields := trailerFields(st.f.s.lw.st.h2fields[:0], &st.f.s.lw.st.intern, trailers)
		st.f.s.lw.st.h2fields = fields[:0]
		if len(fields) > 0 && st.f.conn.WriteHeaders(st.id, fields, true) == nil {
			st.finish(false)
			st.f.kick()
			return protocol.Continue
		}
	}
	st.finish(true)
	st.f.kick()
	return protocol.Continue
}

// finish marks the response complete; withData sends the END_STREAM on
// an empty DATA frame when none was sent yet.
func (st *h2Stream) finish(withData bool) {
	st.rstate = rsDone
	if withData && !st.ended {
		st.f.conn.WriteData(st.id, nil, true)
	}
	st.ended = true
}

// fail resets the stream: the response cannot be carried.
func (st *h2Stream) fail() {
	if !st.ended {
		st.ended = true
		st.f.conn.Reset(st.id, h2.ErrCodeInternal)
	}
}

// takeResponse sends the child's final response head as the child parsed
// and edited it, straight from its editor to a HEADERS frame: the head is
// parsed once, by the child, instead of being written as HTTP/1.1 bytes
// and parsed again here. kind and left are the body's framing as the
// child found it; the body's bytes follow through Write.
func (st *h2Stream) takeResponse(e *http1.Editor, kind http1.BodyKind, left int64) headTaken {
	if st.reset || st.f.closing || st.rstate != rsHead {
		st.reset = true // the stream is gone: its cycle closes
		return headFailed
	}
	in := &st.f.s.lw.st.intern
	fields := append(st.f.s.lw.st.h2fields[:0], h2.HeaderField{Name: ":status", Value: statusText(e.Status())})
	e.EachField(func(name, value []byte) { fields = appendH2Field(fields, in, name, value, false) })
	st.f.s.lw.st.h2fields = fields[:0]
	st.kind, st.left = kind, left
	end := kind == http1.BodyNone || kind == http1.BodyLength && left == 0
	defer st.f.kick()
	if err := st.f.conn.WriteHeaders(st.id, fields, end); err != nil {
		st.fail()
		st.reset = true
		return headFailed
	}
	st.hbuf = nil
	if end {
		st.finish(false)
	} else {
		st.rstate = rsBody
	}
	return headSent
}

// gone implements frontStream: the client or the connection reset the
// stream.
func (st *h2Stream) gone() bool { return st.reset }

// responseFields converts a response head to HTTP/2 fields (RFC 9113
// §8.2.2: no connection-specific fields, lower-case names).
func (st *h2Stream) responseFields(head []byte) []h2.HeaderField {
	fields := append(st.f.s.lw.st.h2fields[:0], h2.HeaderField{Name: ":status", Value: statusText(st.resp.Status)})
	fields = appendHeadFields(fields, &st.f.s.lw.st.intern, head, &st.resp)
	st.f.s.lw.st.h2fields = fields[:0]
	return fields
}

// CloseWrite implements protocol.Socket: a stream's end is its
// END_STREAM, sent with the response's end.
func (st *h2Stream) CloseWrite() error { return nil }

// Fd implements protocol.Socket: a stream has no descriptor.
func (st *h2Stream) Fd() int { return -1 }

// Close implements protocol.Socket: the child is closing. A response not
// complete is reset, unless it was one that ends with the backend's
// close, which ends it.
func (st *h2Stream) Close() error {
	if st.closed {
		return nil
	}
	st.closed = true
	f := st.f
	if !f.closing {
		if !st.ended {
			st.ended = true
			f.conn.Reset(st.id, h2.ErrCodeCancel)
		} else if !st.reqEnd && !st.reset {
			// A complete response before the end of the request: ask the
			// client to stop sending (RFC 9113 §8.1).
			f.conn.Reset(st.id, h2.ErrCodeNo)
		}
		delete(f.streams, st.id)
		if st.credit > 0 {
			f.conn.Consumed(st.id, st.credit)
			st.credit = 0
		}
		f.kick()
	}
	st.req, st.hbuf = nil, nil
	return nil
}

// Ready implements session.ProxySession.
func (c *h2Child) Ready(self session.ProxySession) session.Result { return c.run(self) }

// Timeout implements session.ProxySession.
func (c *h2Child) Timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	return c.timeout(t, name)
}

// Close implements session.ProxySession: the request ends, and the stream
// with it. The child then serves a later stream of the worker.
func (c *h2Child) Close() {
	first := !c.st.closed
	c.close()
	c.st.Close()
	if first {
		c.st.f.s.lw.st.reuseChild(c)
	}
}

// maxSpareChildren bounds the stream sessions a worker keeps for reuse,
// maxKeptRequest the request array each keeps.
const (
	maxSpareChildren = 256
	maxKeptRequest   = 4 << 10
)

// newChild returns a stream session closed before, or a new one: a
// stream allocates nothing once the worker has served as many at once.
func (st *workerState) newChild() *h2Child {
	c, ok := st.children.take()
	if !ok {
		return &h2Child{}
	}
	var buf []byte
	if cap(c.st.reqBuf) <= maxKeptRequest {
		buf = c.st.reqBuf[:0] // an upload's large array is not kept
	}
	*c = h2Child{}
	c.st.reqBuf = buf
	return c
}

// reuseChild keeps a closed child for a later stream. One whose news is
// still queued on its connection is left to the collector: the queue
// holds it until its next round, and must not see a new stream in it.
// Other references to a closed child (its token until the batch ends,
// a deferred drive) are to a closed slot the worker skips.
func (st *workerState) reuseChild(c *h2Child) {
	if !c.st.queued {
		st.children.keep(c, maxSpareChildren)
	}
}

// PrintSession implements session.ProxySession.
func (c *h2Child) PrintSession(w io.Writer) {
	fmt.Fprintf(w, "http/2 stream %d of %v: ", c.st.id, c.Peer)
	c.print(w)
}

var (
	_ protocol.Socket      = (*h2Stream)(nil)
	_ session.ProxySession = (*h2Child)(nil)
)
var _ h2.Handler = (*h2Front)(nil)
