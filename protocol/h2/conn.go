package h2

import (
	"errors"
	"time"
)

// Handler receives the events of a [ServerConn]. Its methods are called
// from inside Feed, Timeout and Consume, on the goroutine that calls
// them; they may call back into the ServerConn (WriteHeaders, WriteData,
// Reset, Consumed...).
type Handler interface {
	// Headers delivers a request head, already validated per RFC 9113
	// §8 (pseudo-header fields included), or the request's trailers
	// (trailers == true, always with endStream). fields and its backing
	// array are valid only during the call; the strings may be kept.
	Headers(id uint32, fields []HeaderField, endStream, trailers bool)
	// Data delivers request body octets. data is valid only during the
	// call: the handler copies or forwards it. The stream's window is
	// restored only when the handler calls Consumed, so at most
	// InitialWindowSize octets per stream (ConnWindowSize per connection)
	// are ever outstanding. An empty data with endStream ends the body.
	Data(id uint32, data []byte, endStream bool)
	// StreamReset reports that the stream is gone: the client reset it,
	// or the connection did (a protocol error on the stream, a stall, a
	// content-length mismatch, or a connection error, with its code).
	// The handler must not write on id afterwards. Streams the handler
	// resets itself with Reset are not reported.
	StreamReset(id uint32, code ErrCode)
	// StreamWritable reports that SendWindow(id) may have become
	// positive after it returned 0 or WriteData accepted less than
	// offered: the client opened a window, or the output buffer drained.
	StreamWritable(id uint32)
}

// Errors of the writing methods: programming errors of the handler, not
// the peer's.
var (
	ErrStreamClosed   = errors.New("h2: stream not open for writing")
	ErrConnClosed     = errors.New("h2: connection closed")
	ErrInvalidHeaders = errors.New("h2: fields invalid for HTTP/2")
)

// ServerConn is the server side of one HTTP/2 connection (RFC 9113): a
// state machine without I/O. Bytes read from the socket go to Feed,
// which calls the Handler; responses are written with WriteHeaders and
// WriteData; the bytes to send are in Output. It is not safe for
// concurrent use: one event loop owns it. See LIFECYCLE.md.
type ServerConn struct {
	connCore
	h Handler

	prefaceLeft    int   // client preface octets still to check
	recvInitWindow int64 // window of new streams, before/after the ack of our SETTINGS

	stallTimeout     time.Duration
	drainPingTimeout time.Duration
	drainAt          int64
	stallResets      uint64
	goAwayID         uint32 // last stream id of our final GOAWAY
}

// drainPing is the payload of the PING of a graceful shutdown.
var drainPing = [8]byte{'s', 'l', 'u', 'i', 'c', 'e', 'd', 'r'}

// NewServerConn returns a connection that has queued its server preface:
// our SETTINGS frame (RFC 9113 §3.4) and the WINDOW_UPDATE that raises
// the connection window to cfg.ConnWindowSize. The SETTINGS timeout
// starts at the first Feed or Timeout.
func NewServerConn(cfg ServerConfig, h Handler) *ServerConn {
	lim := cfg.limits()
	c := &ServerConn{
		h:                h,
		recvInitWindow:   max(DefaultInitialWindowSize, int64(lim.InitialWindowSize)),
		stallTimeout:     positive(cfg.StallTimeout, DefaultStallTimeout),
		drainPingTimeout: positive(cfg.DrainPingTimeout, DefaultDrainPingTimeout),
	}
	c.init(lim, h, c, true)
	if !cfg.PrefaceRead {
		c.prefaceLeft = len(ClientPreface)
	}
	c.appendPreface(SettingMaxConcurrentStreams, lim.MaxConcurrentStreams)
	return c
}

// Feed parses as many complete frames as b holds, calls the Handler for
// them, and returns the octets consumed: the caller keeps the rest and
// passes it again, followed by what it reads next. On a new connection b
// starts with the client preface (unless ServerConfig.PrefaceRead).
//
// A non-nil error is a ConnectionError: GOAWAY with its code is already
// in Output, which the caller flushes before closing the socket. Once
// Done reports true, Feed consumes nothing more.
func (c *ServerConn) Feed(b []byte, now time.Time) (n int, err error) {
	if c.err != nil {
		return 0, c.err
	}
	c.setNow(now)
	if c.prefaceLeft > 0 {
		// §3.4: the preface is checked octet by octet so that an HTTP/1.1
		// request is rejected at once, not after 24 octets.
		off := len(ClientPreface) - c.prefaceLeft
		m := min(len(b), c.prefaceLeft)
		if string(b[:m]) != ClientPreface[off:off+m] {
			return 0, c.fail(ErrCodeProtocol, "invalid client preface")
		}
		c.prefaceLeft -= m
		n = m
		if c.prefaceLeft > 0 {
			return n, nil
		}
	}
	return c.feed(b, n)
}

func (c *ServerConn) onFrame(f Frame) {
	switch f.Type {
	case FrameData:
		c.onData(&f)
	case FrameRSTStream:
		code, _ := f.RSTStream()
		c.onRSTStream(f.StreamID, code)
	case FrameSettings:
		c.onSettings(&f)
	case FramePing:
		c.onPing(&f)
	case FrameGoAway:
		// §6.8: the client opens no more streams; those open finish.
		c.peerGoAway = true
		c.checkDone()
	default:
		c.onCommonFrame(&f)
	}
}

// onFrameStreamError handles a frame Parser.Next classified as a stream
// error (§5.4.2).
func (c *ServerConn) onFrameStreamError(f Frame, code ErrCode) {
	id := f.StreamID
	switch f.Type {
	case FrameHeaders:
		// A self-dependency (RFC 7540 §5.3.1): the field block must still
		// be decoded to keep HPACK in sync, then the stream is reset.
		h, _ := f.Headers()
		c.onHeaders(id, h.Fragment, h.EndStream, h.EndHeaders, true)
		return
	case FrameWindowUpdate:
		if c.isIdle(id) {
			c.fail(ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
			return
		}
		if c.find(id) == nil {
			return // closed: a zero increment there changes nothing
		}
	}
	c.streamError(id, code)
}

// --- frames -----------------------------------------------------------

func (c *ServerConn) onData(f *Frame) {
	id := f.StreamID
	data, _ := f.Data()
	length := int64(f.Length)
	endStream := f.EndStream()
	if !c.onDataConn(id, length, len(data) == 0, endStream) {
		return
	}
	st := c.find(id)
	if st == nil || st.remoteEnded {
		c.giveBackConn(length)
		if st != nil {
			// §5.1 half-closed (remote).
			c.streamError(id, ErrCodeStreamClosed)
			return
		}
		// Closed by us: in flight when we reset it, ignored (§5.1).
		if c.onClosed(id, "DATA after END_STREAM") == 0 {
			// Closed too long ago to know how: answer without counting it
			// against the client, it may be a late frame after our reset.
			c.sendReset(id, ErrCodeStreamClosed, false)
		}
		return
	}
	if !c.onDataStream(st, length, len(data), endStream) {
		return
	}
	if endStream {
		st.remoteEnded = true
	}
	c.h.Data(id, data, endStream)
	if endStream {
		c.afterRemoteEnd(id)
	}
}

// onFieldBlock handles a complete field block of a HEADERS frame (§4.3).
func (c *ServerConn) onFieldBlock(id uint32, block []byte, endStream, selfDep bool) {
	fields, tooLarge, ok := c.decodeBlock(block)
	if !ok {
		return
	}
	if st := c.find(id); st != nil {
		c.onTrailers(st, fields, endStream, tooLarge, selfDep)
		return
	}
	if id <= c.lastID {
		if c.onClosed(id, "HEADERS after END_STREAM") == 0 {
			// §5.1.1: ids only increase; this one was never opened or was
			// closed long ago.
			c.fail(ErrCodeProtocol, "HEADERS on a closed stream")
		}
		return
	}
	// A new stream. Using id closes every idle stream below it (§5.1.1).
	c.lastID = id
	if c.drain == drainFinal && id > c.goAwayID {
		// §6.8: after our final GOAWAY new streams are ignored.
		c.remember(id, closedByUs)
		return
	}
	if selfDep {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	if uint32(len(c.streams)) >= c.lim.MaxConcurrentStreams {
		// §5.1.2.
		c.counts.StreamsRefused++
		c.streamError(id, ErrCodeRefusedStream)
		return
	}
	if tooLarge {
		c.answerTooLarge(id, endStream)
		return
	}
	if err := ValidateRequest(fields); err != nil {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	cl, ok := contentLength(fields)
	if !ok || endStream && cl > 0 {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	c.newStream(stream{
		id:            id,
		remoteEnded:   endStream,
		sendWindow:    c.peerInitWindow,
		recvWindow:    c.recvInitWindow,
		contentLength: cl,
	})
	c.counts.StreamsOpened++
	c.h.Headers(id, fields, endStream, false)
}

// onTrailers handles a field block on an open stream: trailers (§8.1).
func (c *ServerConn) onTrailers(st *stream, fields []HeaderField, endStream, tooLarge, selfDep bool) {
	id := st.id
	if st.remoteEnded {
		// §5.1 half-closed (remote).
		c.streamError(id, ErrCodeStreamClosed)
		return
	}
	if selfDep || tooLarge || !endStream || ValidateTrailers(fields) != nil ||
		st.contentLength >= 0 && st.received != st.contentLength {
		// §8.1: a second HEADERS must end the stream; trailers carry no
		// pseudo-header fields.
		c.streamError(id, ErrCodeProtocol)
		return
	}
	st.remoteEnded = true
	c.h.Headers(id, fields, true, true)
	c.afterRemoteEnd(id)
}

// answerTooLarge answers a request head above MaxHeaderListSize with 431
// (RFC 6585 §5, RFC 9113 §10.5.1) instead of a reset, so that a browser
// shows an error rather than retrying. The handler never hears of it.
func (c *ServerConn) answerTooLarge(id uint32, endStream bool) {
	c.counts.HeadersTooLarge++
	c.writeHeaderBlock(id, []HeaderField{{Name: ":status", Value: "431"}, {Name: "content-length", Value: "0"}}, true)
	if !endStream {
		// §8.1: the response is complete; stop the upload without error.
		c.sendReset(id, ErrCodeNo, false)
	} else {
		c.remember(id, closedByUs)
	}
	if !c.resets.take(c.lim.ResetBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.MadeYouReset, "too many rejected streams")
	}
}

// contentLength returns the request's content-length (-1 without one);
// ok is false if it is malformed or given twice with different values.
func contentLength(fields []HeaderField) (n int64, ok bool) {
	n = -1
	for i := range fields {
		if fields[i].Name != "content-length" {
			continue
		}
		v := fields[i].Value
		if len(v) == 0 || len(v) > 18 {
			return 0, false
		}
		var x int64
		for j := 0; j < len(v); j++ {
			d := v[j]
			if d < '0' || d > '9' {
				return 0, false
			}
			x = x*10 + int64(d-'0')
		}
		if n >= 0 && n != x {
			return 0, false
		}
		n = x
	}
	return n, true
}

func (c *ServerConn) onRSTStream(id uint32, code ErrCode) {
	if c.isIdle(id) {
		c.fail(ErrCodeProtocol, "RST_STREAM on an idle stream")
		return
	}
	st := c.find(id)
	if st == nil {
		return // §5.1: RST_STREAM on a closed stream is ignored.
	}
	c.counts.ResetsReceived++
	rapid := !st.localEnded
	c.removeStream(st, closedByPeer)
	c.h.StreamReset(id, code)
	// CVE-2023-44487: a reset of a stream we are still answering costs a
	// backend exchange; a reset after our END_STREAM costs nothing.
	if rapid && !c.resets.take(c.lim.ResetBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.RapidReset, "rapid reset")
	}
}

func (c *ServerConn) onSettings(f *Frame) {
	if !f.IsAck() {
		// ENABLE_PUSH: we never push. MAX_CONCURRENT_STREAMS: limits
		// streams we would open. MAX_HEADER_LIST_SIZE is advisory.
		c.applySettings(f)
		return
	}
	if !c.onSettingsAck() {
		return
	}
	// §6.5.3: our window binds the client only from now on.
	if delta := int64(c.lim.InitialWindowSize) - c.recvInitWindow; delta != 0 {
		for _, st := range c.streams {
			st.recvWindow += delta
		}
	}
	c.recvInitWindow = int64(c.lim.InitialWindowSize)
}

func (c *ServerConn) onPing(f *Frame) {
	data, _ := f.Ping()
	if !f.IsAck() {
		c.answerPing(data)
	} else if c.drain == drainPinging && data == drainPing {
		c.finalGoAway()
	}
}

// --- writing ----------------------------------------------------------

// WriteHeaders queues a response head, a 1xx informational head (its
// :status starts with 1; endStream must be false), or, after the final
// head, trailers (endStream must be true). The block is split into
// HEADERS and CONTINUATION frames by the client's SETTINGS_MAX_FRAME_SIZE.
// Headers are not flow-controlled and not bounded by MaxOutput.
func (c *ServerConn) WriteHeaders(id uint32, fields []HeaderField, endStream bool) error {
	if c.err != nil {
		return ErrConnClosed
	}
	st := c.find(id)
	if st == nil || st.localEnded {
		return ErrStreamClosed
	}
	info := len(fields) > 0 && fields[0].Name == ":status" && len(fields[0].Value) > 0 && fields[0].Value[0] == '1'
	switch {
	case st.finalHead:
		if !endStream || ValidateTrailers(fields) != nil {
			return ErrInvalidHeaders
		}
	case info:
		if endStream || ValidateResponse(fields) != nil {
			return ErrInvalidHeaders
		}
	default:
		if ValidateResponse(fields) != nil {
			return ErrInvalidHeaders
		}
		st.finalHead = true
	}
	c.writeHeaderBlock(id, fields, endStream)
	if endStream {
		c.endLocal(st)
	}
	return nil
}

// WriteData queues response body octets for id and returns how many it
// took: limited by the stream's and the connection's send windows
// (§6.9), and by MaxOutput. Frames are cut at the client's
// SETTINGS_MAX_FRAME_SIZE. endStream is applied only if all of p was
// taken; an empty p with endStream sends an empty DATA frame with
// END_STREAM. When it takes less than p, StreamWritable follows once more
// can be sent. Writing before the response head, or after END_STREAM,
// takes nothing.
func (c *ServerConn) WriteData(id uint32, p []byte, endStream bool) int {
	st := c.writable(id)
	if st == nil || !st.finalHead {
		return 0
	}
	return c.writeData(st, p, endStream)
}

// Reset ends stream id from our side with RST_STREAM(code) (§6.4), e.g.
// because the backend failed, or with NO_ERROR to stop an upload after a
// complete response (§8.1). The handler is not called back.
func (c *ServerConn) Reset(id uint32, code ErrCode) { c.reset(id, code) }

// --- shutdown and timers ------------------------------------------------

// Shutdown starts a graceful drain (§6.8): GOAWAY with the largest stream
// id and a PING, then, once the PING is acknowledged (or after
// DrainPingTimeout), GOAWAY with the last stream id really received.
// Streams up to it finish; later ones are ignored. Done reports true when
// none is left.
func (c *ServerConn) Shutdown(now time.Time) {
	c.setNow(now)
	if c.err != nil || c.drain != drainNone {
		return
	}
	c.drain = drainPinging
	c.drainAt = c.clock + int64(c.drainPingTimeout)
	c.appendGoAway(streamIDMask, ErrCodeNo, "")
	c.out = AppendPing(c.out, false, drainPing)
}

func (c *ServerConn) finalGoAway() {
	c.drain = drainFinal
	c.goAwayID = c.lastID
	c.appendGoAway(c.goAwayID, ErrCodeNo, "")
	c.checkDone()
}

// Err returns the connection error that ended the connection, if any.
func (c *ServerConn) Err() error { return c.err }

// Deadline returns the earliest time Timeout must be called: the SETTINGS
// ack timeout, the drain PING timeout, a stall. Zero means none.
func (c *ServerConn) Deadline() time.Time {
	if c.finished {
		return time.Time{}
	}
	d := c.settingsDeadline()
	if c.drain == drainPinging {
		d = earlier(d, c.drainAt)
	}
	for _, st := range c.streams {
		if st.stalled != 0 {
			d = earlier(d, st.stalled+int64(c.stallTimeout))
		}
	}
	return c.timeAt(d)
}

// Timeout handles the deadlines due at now: an unacknowledged SETTINGS
// ends the connection with GOAWAY(SETTINGS_TIMEOUT) (§6.5.3), the drain
// sends its final GOAWAY, and streams stalled on flow control for
// StallTimeout are reset with CANCEL (the handler gets StreamReset).
func (c *ServerConn) Timeout(now time.Time) {
	c.setNow(now)
	if c.finished {
		return
	}
	if c.settingsExpired() {
		return
	}
	if c.drain == drainPinging && c.clock >= c.drainAt {
		c.finalGoAway()
	}
	ids := c.takeScratch()
	for _, st := range c.streams {
		if st.stalled != 0 && c.clock >= st.stalled+int64(c.stallTimeout) {
			ids = append(ids, st.id)
		}
	}
	for _, id := range ids {
		if c.find(id) != nil && c.err == nil {
			c.stallResets++
			c.sendReset(id, ErrCodeCancel, true)
		}
	}
	c.scratchIDs = ids[:0]
}

// Stats returns the connection's counters.
func (c *ServerConn) Stats() ConnStats {
	k := &c.counts
	r := k.copyRare()
	return ConnStats{
		StreamsOpened: k.StreamsOpened, StreamsRefused: k.StreamsRefused,
		ResetsReceived: k.ResetsReceived, ResetsSent: k.ResetsSent,
		StallResets: c.stallResets, HeadersTooLarge: k.HeadersTooLarge,
		GoAwaySent: k.GoAwaySent, LastGoAwayCode: k.LastGoAwayCode,
		ConnErrors: r.ConnErrors, StreamErrors: r.StreamErrors, Floods: r.Floods,
	}
}
