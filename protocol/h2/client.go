package h2

import (
	"errors"
	"time"
)

// ClientConfig configures a [ClientConn]. The zero value of every field
// means its default; NewClientConn fills them in.
type ClientConfig struct {
	// MaxConcurrentStreams caps the streams we open at once. The server's
	// SETTINGS_MAX_CONCURRENT_STREAMS caps them too (RFC 9113 §5.1.2);
	// CanOpen honours the smaller. Until the server's SETTINGS arrive its
	// limit is taken to be 100, the smallest value §6.5.2 recommends. We
	// accept no push, so this is never advertised. Default 100.
	MaxConcurrentStreams uint32
	// InitialWindowSize is our SETTINGS_INITIAL_WINDOW_SIZE: how many
	// response body octets a stream may have outstanding (received, not
	// yet Consumed) (RFC 9113 §6.9.2). Default 256 KiB: a backend is
	// usually close, but one stream carrying a large download or a gRPC
	// stream must not stall at 65535 octets per round trip, and a proxy
	// holds no more than it has not forwarded yet, because windows reopen
	// only on Consumed. ConnWindowSize still bounds the total.
	InitialWindowSize uint32
	// ConnWindowSize is our connection receive window: the octets all
	// streams together may have outstanding. It is raised from the initial
	// 65535 by a WINDOW_UPDATE on stream 0 sent with our SETTINGS.
	// Default 1 MiB.
	ConnWindowSize uint32
	// MaxFrameSize is our SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2), in
	// [2^14, 2^24-1]. Default 16384. The buffer given to Feed must be able
	// to hold MaxFrameSize+9 octets (see [ClientConn.MaxFrameLen]).
	MaxFrameSize uint32
	// MaxHeaderListSize is our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113
	// §6.5.2). A response head or trailer section above it resets its
	// stream with PROTOCOL_ERROR (the handler gets StreamReset); the
	// connection goes on. Default 64 KiB.
	MaxHeaderListSize uint32
	// HeaderTableSize is our SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic
	// table the server may use to encode responses (RFC 7541 §4.2).
	// Default 4096.
	HeaderTableSize uint32
	// MaxOutput bounds the output buffer: WriteData accepts nothing
	// while Output holds this many octets or more, so a backend that does
	// not read cannot make us buffer request bodies. Default 64 KiB.
	MaxOutput int
	// SettingsTimeout is how long our SETTINGS may stay unacknowledged
	// while the peer sends nothing (its ACK may wait behind frames it
	// queued before) before the connection ends with
	// GOAWAY(SETTINGS_TIMEOUT) (RFC 9113 §6.5.3). Default 10 s.
	SettingsTimeout time.Duration
	// PingTimeout is how long a PING sent by Ping may stay unanswered
	// before the connection is declared dead (Err returns
	// ErrPingTimeout, every stream gets StreamReset(CANCEL)). Default 10 s.
	PingTimeout time.Duration
	// MaxInterimResponses bounds the 1xx responses (RFC 9110 §15.2) one
	// stream may receive before its final response; one more resets the
	// stream with PROTOCOL_ERROR. Default 16.
	MaxInterimResponses int

	// Flood defences (RFC 9113 §10.5) against a misbehaving backend. Each
	// ends the connection with GOAWAY(ENHANCE_YOUR_CALM) and counts it in
	// ClientStats.Floods. They use the same token buckets as ServerConn.

	// MaxHeaderBlockSize bounds a field block reassembled from HEADERS
	// and CONTINUATION frames (CVE-2024-27316). Default
	// 2*MaxHeaderListSize.
	MaxHeaderBlockSize uint32
	// MaxContinuations bounds the CONTINUATION frames of one field block,
	// empty ones included. Default 32.
	MaxContinuations int
	// MaxQueuedControlFrames bounds the frames we queued in answer to the
	// server (SETTINGS and PING acks, RST_STREAM for its errors) that are
	// still in Output. Default 1000.
	MaxQueuedControlFrames int
	// ResetBudget limits RST_STREAM frames from the server on streams
	// already closed (they change nothing but cost a lookup) and the
	// RST_STREAM frames we send because of the server's frames (malformed
	// responses, STREAM_CLOSED, flow-control or content-length
	// violations). Resets of our open streams are not charged: there are
	// never more of those than streams we opened. Default 200 burst,
	// 100/s.
	ResetBudget Budget
	// PingBudget limits PING frames. Default 100 burst, 20/s.
	PingBudget Budget
	// SettingsBudget limits SETTINGS frames (not acks). Default 50 burst,
	// 5/s.
	SettingsBudget Budget
	// EmptyDataBudget limits DATA frames with no data and no END_STREAM.
	// Default 100 burst, 20/s.
	EmptyDataBudget Budget
	// WindowUpdateBudget limits WINDOW_UPDATE frames. Besides the time
	// refill, every DATA frame we send refills 1 + len/2048 tokens, since
	// a server answers our data with updates. Default 1000 burst, 100/s.
	WindowUpdateBudget Budget
}

// Defaults of ClientConfig that differ from ServerConfig's.
const (
	DefaultClientInitialWindowSize = 256 << 10
	DefaultPingTimeout             = 10 * time.Second
	DefaultMaxInterimResponses     = 16
)

// assumedMaxStreams is the server's concurrency limit before its SETTINGS
// arrive: the initial value is unlimited (§5.1.2), but §6.5.2 recommends
// no less than 100, so opening more would risk REFUSED_STREAM.
const assumedMaxStreams = 100

func (cfg *ClientConfig) limits() limits {
	l := limits{
		MaxConcurrentStreams:   cfg.MaxConcurrentStreams,
		InitialWindowSize:      cfg.InitialWindowSize,
		ConnWindowSize:         cfg.ConnWindowSize,
		MaxFrameSize:           cfg.MaxFrameSize,
		MaxHeaderListSize:      cfg.MaxHeaderListSize,
		HeaderTableSize:        cfg.HeaderTableSize,
		MaxOutput:              cfg.MaxOutput,
		SettingsTimeout:        cfg.SettingsTimeout,
		MaxHeaderBlockSize:     cfg.MaxHeaderBlockSize,
		MaxContinuations:       cfg.MaxContinuations,
		MaxQueuedControlFrames: cfg.MaxQueuedControlFrames,
		ResetBudget:            cfg.ResetBudget,
		PingBudget:             cfg.PingBudget,
		SettingsBudget:         cfg.SettingsBudget,
		EmptyDataBudget:        cfg.EmptyDataBudget,
		WindowUpdateBudget:     cfg.WindowUpdateBudget,
	}
	l.setDefaults(DefaultClientInitialWindowSize)
	return l
}

// ClientHandler receives the events of a [ClientConn]. Its methods are
// called from inside Feed, Timeout, Consume and Close, on the goroutine
// that calls them; they may call back into the ClientConn.
type ClientHandler interface {
	// ResponseHeaders delivers a response head, already validated with
	// ValidateResponse: an interim one (its :status, always fields[0],
	// is 1xx; never with endStream) or the final one. With trailers set
	// it delivers the trailer section instead, validated with
	// ValidateTrailers and always with endStream. fields and its backing
	// array are valid only during the call; the strings may be kept.
	ResponseHeaders(id uint32, fields []HeaderField, endStream, trailers bool)
	// ResponseData delivers response body octets. data is valid only
	// during the call. The stream's window is restored only when the
	// handler calls Consumed, so at most InitialWindowSize octets per
	// stream (ConnWindowSize per connection) are ever outstanding. An
	// empty data with endStream ends the body.
	ResponseData(id uint32, data []byte, endStream bool)
	// StreamReset reports that the stream is gone: the server reset it
	// (its code), or we did because of its frames (PROTOCOL_ERROR,
	// STREAM_CLOSED, FLOW_CONTROL_ERROR), or the connection ended (the
	// connection error's code; CANCEL after Close or a PING timeout).
	// REFUSED_STREAM means the server did not process the request
	// (RFC 9113 §8.7): it was refused, or was above the last stream id
	// of the server's GOAWAY, and may be retried on another connection.
	// NO_ERROR after a complete response asks us to stop sending the
	// request body; the response stands (§8.1). The handler must not
	// write on id afterwards. Streams reset with Reset are not reported.
	StreamReset(id uint32, code ErrCode)
	// StreamWritable reports that SendWindow(id) may have become
	// positive after it returned 0 or WriteData accepted less than
	// offered: the server opened a window, or the output buffer drained.
	StreamWritable(id uint32)
}

// Errors of ClientConn's writing methods.
var (
	// ErrNoStream is returned by OpenStream when CanOpen is false.
	ErrNoStream = errors.New("h2: no new stream may be opened on this connection")
	// ErrInvalidRequest is returned for request fields or trailers that
	// ValidateRequest or ValidateTrailers reject.
	ErrInvalidRequest = errors.New("h2: request fields invalid for HTTP/2")
	// ErrPingTimeout is the error of a connection whose PING went
	// unanswered for PingTimeout.
	ErrPingTimeout = errors.New("h2: PING not acknowledged in time")
)

// ClientConn is the client side of one HTTP/2 connection (RFC 9113),
// cleartext with prior knowledge (h2c, §3.3) or over TLS: a state machine
// without I/O, for a proxy that multiplexes requests to one backend.
// Requests go in with OpenStream, WriteData and WriteTrailers; the bytes
// to send are in Output; bytes read from the socket go to Feed, which
// calls the ClientHandler. It is not safe for concurrent use: one event
// loop owns it. See LIFECYCLE.md.
type ClientConn struct {
	connCore
	h ClientHandler

	nextID uint32 // the id OpenStream uses next

	pingTimeout time.Duration
	maxInterim  int
	pingData    [8]byte
	pingSent    int64 // 0: no PING outstanding
	pingSeq     uint64

	goAwayLast uint32

	goAwayReceived uint64
	peerGoAwayCode ErrCode
	pingsSent      uint64
	pingsAcked     uint64
	rtt            time.Duration
}

// ClientStats counts what happened on a client connection.
type ClientStats struct {
	StreamsOpened   uint64
	StreamsRefused  uint64 // streams reported REFUSED_STREAM: by RST_STREAM or above a GOAWAY's last stream id
	ResetsReceived  uint64 // RST_STREAM frames on open streams
	ResetsSent      uint64 // RST_STREAM frames sent, for any reason
	HeadersTooLarge uint64 // response heads or trailers over MaxHeaderListSize
	GoAwaySent      uint64
	LastGoAwayCode  ErrCode // of the last GOAWAY we sent
	GoAwayReceived  uint64
	PeerGoAwayCode  ErrCode // of the last GOAWAY the server sent
	PingsSent       uint64  // liveness PINGs (Ping)
	PingsAcked      uint64
	RTT             time.Duration // of the last acknowledged PING
	// ConnErrors counts connection errors we raised, by code.
	ConnErrors [ErrCodeHTTP11Required + 1]uint64
	// StreamErrors counts RST_STREAM frames sent because of the server's
	// frames, by code.
	StreamErrors [ErrCodeHTTP11Required + 1]uint64
	// Floods counts connections ended with ENHANCE_YOUR_CALM. RapidReset
	// counts RST_STREAM floods on closed streams, MadeYouReset our own
	// resets caused by the server.
	Floods FloodStats
}

// NewClientConn returns a connection that has queued its preface: the
// 24-octet ClientPreface, our SETTINGS (RFC 9113 §3.4) with ENABLE_PUSH
// 0, and the WINDOW_UPDATE that raises the connection window to
// cfg.ConnWindowSize. Streams may be opened at once (§3.4: the client
// need not wait for the server's SETTINGS). The connection's clock, and
// with it the SETTINGS timeout, starts at the first call given a time:
// call Timeout(now) once the socket is connected, so that Deadline is
// set even if the server never sends a byte.
func NewClientConn(cfg ClientConfig, h ClientHandler) *ClientConn {
	c := &ClientConn{
		h:           h,
		nextID:      1,
		pingTimeout: positive(cfg.PingTimeout, DefaultPingTimeout),
		maxInterim:  positive(cfg.MaxInterimResponses, DefaultMaxInterimResponses),
	}
	c.init(cfg.limits(), h, c, false)
	c.peerMaxStreams = assumedMaxStreams
	c.out = append(c.out, ClientPreface...)
	// §6.5.2, §8.4: a client that sends ENABLE_PUSH 0 never sees
	// PUSH_PROMISE; one arriving is a PROTOCOL_ERROR.
	c.appendPreface(SettingEnablePush, 0)
	return c
}

// --- reading ----------------------------------------------------------

// Feed parses as many complete frames as b holds, calls the handler for
// them, and returns the octets consumed: the caller keeps the rest and
// passes it again, followed by what it reads next.
//
// A non-nil error is a ConnectionError we raised because of the server's
// frames: GOAWAY with its code is already in Output, which the caller
// flushes before closing the socket, and every open stream got
// StreamReset. Once Done reports true Feed consumes nothing more (it
// returns ErrConnClosed after a graceful end).
func (c *ClientConn) Feed(b []byte, now time.Time) (n int, err error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.finished {
		return 0, ErrConnClosed
	}
	c.setNow(now)
	return c.feed(b, 0)
}

func (c *ClientConn) onFrame(f Frame) {
	switch f.Type {
	case FrameData:
		c.onData(&f)
	case FrameRSTStream:
		code, _ := f.RSTStream()
		c.onRSTStream(f.StreamID, code)
	case FrameSettings:
		if !f.IsAck() {
			c.applySettings(&f)
		} else {
			// Our INITIAL_WINDOW_SIZE needs no care here: the server
			// reads our SETTINGS before any HEADERS of ours, so every
			// stream it answers already has our window.
			c.onSettingsAck()
		}
	case FramePing:
		c.onPing(&f)
	case FrameGoAway:
		last, code, _, _ := f.GoAway()
		c.onGoAway(last, code)
	default:
		c.onCommonFrame(&f)
	}
}

// onFrameStreamError handles a frame Parser.Next classified as a stream
// error (§5.4.2).
func (c *ClientConn) onFrameStreamError(f Frame, code ErrCode) {
	id := f.StreamID
	if f.Type == FrameHeaders {
		// A self-dependency: decode the block first (HPACK), then reset.
		h, _ := f.Headers()
		c.onHeaders(id, h.Fragment, h.EndStream, h.EndHeaders, true)
		return
	}
	if c.isIdle(id) {
		// RST_STREAM must not be sent on an idle stream (§5.1, §6.4);
		// §5.4.1 lets any stream error end the connection instead.
		c.fail(code, f.Type.String()+" error on an idle stream")
		return
	}
	if c.find(id) == nil {
		return // closed: nothing to reset
	}
	c.streamError(id, code)
}

// onFieldBlock handles a complete field block of a HEADERS frame (§4.3):
// an interim or final response head, or trailers.
func (c *ClientConn) onFieldBlock(id uint32, block []byte, endStream, selfDep bool) {
	fields, tooLarge, ok := c.decodeBlock(block)
	if !ok {
		return
	}
	if id > c.lastID {
		// §5.1: HEADERS from the server on an idle stream.
		c.fail(ErrCodeProtocol, "HEADERS on an idle stream")
		return
	}
	st := c.find(id)
	if st == nil {
		// Reset by us (refused by GOAWAY included), or closed long ago:
		// frames in flight are ignored (§5.1 closed).
		c.onClosed(id, "HEADERS after END_STREAM")
		return
	}
	switch {
	case st.remoteEnded:
		// §5.1 half-closed (remote).
		c.streamError(id, ErrCodeStreamClosed)
		return
	case selfDep:
		c.streamError(id, ErrCodeProtocol)
		return
	case tooLarge:
		c.counts.HeadersTooLarge++
		c.streamError(id, ErrCodeProtocol)
		return
	}
	if st.finalHead {
		// §8.1: trailers end the stream and carry no pseudo-header field;
		// content-length must equal the body received.
		if !endStream || ValidateTrailers(fields) != nil ||
			st.contentLength >= 0 && st.received != st.contentLength {
			c.streamError(id, ErrCodeProtocol)
			return
		}
		st.remoteEnded = true
		c.h.ResponseHeaders(id, fields, true, true)
		c.afterRemoteEnd(id)
		return
	}
	if ValidateResponse(fields) != nil {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	status := fields[0].Value // ValidateResponse: :status first, 3 digits
	if status[0] == '1' {
		// §8.1: an interim response never ends the stream.
		st.interim++
		if endStream || st.interim > c.maxInterim {
			c.streamError(id, ErrCodeProtocol)
			return
		}
		c.h.ResponseHeaders(id, fields, false, false)
		return
	}
	cl, ok := contentLength(fields)
	if !ok {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	if st.noBody || status == "204" || status == "304" {
		// §8.1.1: a response without content may carry a non-zero
		// content-length; its DATA must be empty all the same (RFC 9110
		// §6.4.1).
		cl = 0
	} else if endStream && cl > 0 {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	st.finalHead = true
	st.contentLength = cl
	st.remoteEnded = endStream
	c.h.ResponseHeaders(id, fields, endStream, false)
	if endStream {
		c.afterRemoteEnd(id)
	}
}

func (c *ClientConn) onData(f *Frame) {
	id := f.StreamID
	data, _ := f.Data()
	length := int64(f.Length)
	endStream := f.EndStream()
	if !c.onDataConn(id, length, len(data) == 0, endStream) {
		return
	}
	st := c.find(id)
	if st == nil {
		c.giveBackConn(length)
		// Reset by us or long closed: in flight, ignored (§5.1).
		c.onClosed(id, "DATA after END_STREAM")
		return
	}
	if st.remoteEnded || !st.finalHead {
		// §5.1 half-closed (remote); §8.1: DATA before the final head
		// is a malformed response.
		c.giveBackConn(length)
		code := ErrCodeProtocol
		if st.remoteEnded {
			code = ErrCodeStreamClosed
		}
		c.streamError(id, code)
		return
	}
	if !c.onDataStream(st, length, len(data), endStream) {
		return
	}
	st.remoteEnded = endStream
	c.h.ResponseData(id, data, endStream)
	if endStream {
		c.afterRemoteEnd(id)
	}
}

func (c *ClientConn) onRSTStream(id uint32, code ErrCode) {
	if c.isIdle(id) {
		c.fail(ErrCodeProtocol, "RST_STREAM on an idle stream")
		return
	}
	st := c.find(id)
	if st == nil {
		// §5.1: ignored on a closed stream, but it cost a lookup and
		// carries nothing.
		if !c.resets.take(c.lim.ResetBudget, c.clock) {
			c.flood(&c.counts.errs().Floods.RapidReset, "RST_STREAM flood")
		}
		return
	}
	c.counts.ResetsReceived++
	if code == ErrCodeRefusedStream {
		c.counts.StreamsRefused++
	}
	c.removeStream(st, closedByPeer)
	c.h.StreamReset(id, code)
}

func (c *ClientConn) onPing(f *Frame) {
	data, _ := f.Ping()
	if f.IsAck() {
		if c.pingSent != 0 && data == c.pingData {
			c.pingsAcked++
			c.rtt = time.Duration(c.clock - c.pingSent)
			c.pingSent = 0
		}
		return
	}
	c.answerPing(data)
}

// onGoAway handles the server's GOAWAY (§6.8): streams above last were
// not and will not be processed, so they are refused (retryable, §8.7);
// the others finish. No stream is opened any more.
func (c *ClientConn) onGoAway(last uint32, code ErrCode) {
	c.goAwayReceived++
	c.peerGoAwayCode = code
	if c.peerGoAway && last > c.goAwayLast {
		last = c.goAwayLast // §6.8: it must not increase; keep the smaller
	}
	c.peerGoAway, c.goAwayLast = true, last
	ids := c.takeScratch()
	for _, st := range c.streams {
		if st.id > last {
			ids = append(ids, st.id)
		}
	}
	for _, id := range ids {
		if c.err != nil {
			break
		}
		if st := c.find(id); st != nil {
			c.counts.StreamsRefused++
			c.removeStream(st, closedByUs)
			c.h.StreamReset(id, ErrCodeRefusedStream)
		}
	}
	c.scratchIDs = ids[:0]
	c.checkDone()
}

// --- writing ----------------------------------------------------------

// CanOpen reports whether OpenStream would succeed now: the connection is
// running (no error, no GOAWAY either way), the open streams are fewer
// than both our MaxConcurrentStreams and the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2), and stream ids are left
// (§5.1.1: they end at 2^31-1; a new connection is needed then).
func (c *ClientConn) CanOpen() bool {
	return !c.finished && !c.peerGoAway && c.drain == drainNone &&
		c.nextID <= streamIDMask &&
		uint32(len(c.streams)) < min(c.lim.MaxConcurrentStreams, c.peerMaxStreams)
}

// OpenStream starts a request: fields (pseudo-header fields first, as
// ValidateRequest requires) go out as HEADERS and, past the server's
// SETTINGS_MAX_FRAME_SIZE, CONTINUATION frames, on the next odd stream
// id (§5.1.1). With endStream the request has no body. A list larger
// than the server's SETTINGS_MAX_HEADER_LIST_SIZE is refused with
// ErrHeaderListTooLarge before anything is sent (the proxy answers 431).
// Headers are not flow-controlled nor bounded by MaxOutput.
func (c *ClientConn) OpenStream(fields []HeaderField, endStream bool) (id uint32, err error) {
	if c.finished {
		return 0, ErrConnClosed
	}
	if !c.CanOpen() {
		return 0, ErrNoStream
	}
	if ValidateRequest(fields) != nil {
		return 0, ErrInvalidRequest
	}
	noBody := false
	var size uint64
	for i := range fields {
		size += uint64(fields[i].Size())
		if fields[i].Name == ":method" && fields[i].Value == "HEAD" {
			noBody = true
		}
	}
	if c.peerMaxHeaderList != 0 && size > uint64(c.peerMaxHeaderList) {
		return 0, ErrHeaderListTooLarge
	}
	id = c.nextID
	c.nextID += 2
	c.lastID = id
	c.newStream(stream{
		id:            id,
		localEnded:    endStream,
		noBody:        noBody,
		sendWindow:    c.peerInitWindow,
		recvWindow:    int64(c.lim.InitialWindowSize),
		contentLength: -1,
	})
	c.counts.StreamsOpened++
	c.writeHeaderBlock(id, fields, endStream)
	return id, nil
}

// WriteTrailers ends the request with a trailer section: HEADERS with
// END_STREAM (§8.1), checked with ValidateTrailers.
func (c *ClientConn) WriteTrailers(id uint32, fields []HeaderField) error {
	if c.finished {
		return ErrConnClosed
	}
	st := c.find(id)
	if st == nil || st.localEnded {
		return ErrStreamClosed
	}
	if ValidateTrailers(fields) != nil {
		return ErrInvalidRequest
	}
	c.writeHeaderBlock(id, fields, true)
	c.endLocal(st)
	return nil
}

// WriteData queues request body octets for id and returns how many it
// took: limited by the stream's and the connection's send windows
// (§6.9), and by MaxOutput. Frames are cut at the server's
// SETTINGS_MAX_FRAME_SIZE. endStream is applied only if all of p was
// taken; an empty p with endStream sends an empty DATA frame with
// END_STREAM. When it takes less than p, StreamWritable follows once more
// can be sent.
func (c *ClientConn) WriteData(id uint32, p []byte, endStream bool) int {
	st := c.writable(id)
	if st == nil {
		return 0
	}
	return c.writeData(st, p, endStream)
}

// Reset ends stream id from our side with RST_STREAM(code) (§6.4), e.g.
// CANCEL because the client of the proxy went away. The handler is not
// called back; frames the server had in flight are ignored.
func (c *ClientConn) Reset(id uint32, code ErrCode) { c.reset(id, code) }

// --- liveness, shutdown, timers ---------------------------------------

// Ping sends a PING (§6.7) to check that an idle pooled connection is
// alive; its acknowledgement sets ClientStats.RTT. If none arrives within
// PingTimeout, Timeout ends the connection with ErrPingTimeout. A Ping
// while one is outstanding does nothing.
func (c *ClientConn) Ping(now time.Time) {
	c.setNow(now)
	if c.finished || c.pingSent != 0 {
		return
	}
	c.pingSeq++
	s := c.pingSeq
	c.pingData = [8]byte{byte(s >> 56), byte(s >> 48), byte(s >> 40), byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
	c.pingSent = c.clock
	c.pingsSent++
	c.out = AppendPing(c.out, false, c.pingData)
}

// Shutdown closes the connection gracefully (§6.8): GOAWAY(NO_ERROR)
// with last stream id 0 (the server opened none), no new stream, and the
// open streams finish. Done reports true once none is left.
func (c *ClientConn) Shutdown(now time.Time) {
	c.setNow(now)
	if c.finished || c.drain != drainNone {
		return
	}
	c.drain = drainFinal
	c.appendGoAway(0, ErrCodeNo, "")
	c.checkDone()
}

// Close tells the connection that the transport is gone (the server
// closed it, or a read or write failed): every open stream gets
// StreamReset(CANCEL), since the server may or may not have processed
// it, and Err returns ErrConnClosed. After Done it does nothing.
func (c *ClientConn) Close() {
	if c.finished {
		return // failed, or drained with no stream left
	}
	c.abort(ErrConnClosed, ErrCodeCancel)
}

// Err returns the error that ended the connection: a ConnectionError we
// raised, ErrPingTimeout, or ErrConnClosed after Close. It is nil after
// a graceful end.
func (c *ClientConn) Err() error { return c.err }

// Deadline returns the earliest time Timeout must be called: the SETTINGS
// ack timeout or the PING timeout. Zero means none.
func (c *ClientConn) Deadline() time.Time {
	if c.finished {
		return time.Time{}
	}
	d := c.settingsDeadline()
	if c.pingSent != 0 {
		d = earlier(d, c.pingSent+int64(c.pingTimeout))
	}
	return c.timeAt(d)
}

// Timeout handles the deadlines due at now: an unacknowledged SETTINGS
// ends the connection with GOAWAY(SETTINGS_TIMEOUT) (§6.5.3), an
// unanswered PING with ErrPingTimeout (streams get StreamReset(CANCEL)).
func (c *ClientConn) Timeout(now time.Time) {
	c.setNow(now)
	if c.finished {
		return
	}
	if c.settingsExpired() {
		return
	}
	if c.pingSent != 0 && c.clock >= c.pingSent+int64(c.pingTimeout) {
		c.abort(ErrPingTimeout, ErrCodeCancel)
	}
}

// Stats returns the connection's counters.
func (c *ClientConn) Stats() ClientStats {
	k := &c.counts
	r := k.copyRare()
	return ClientStats{
		StreamsOpened: k.StreamsOpened, StreamsRefused: k.StreamsRefused,
		ResetsReceived: k.ResetsReceived, ResetsSent: k.ResetsSent,
		HeadersTooLarge: k.HeadersTooLarge,
		GoAwaySent:      k.GoAwaySent, LastGoAwayCode: k.LastGoAwayCode,
		GoAwayReceived: c.goAwayReceived, PeerGoAwayCode: c.peerGoAwayCode,
		PingsSent: c.pingsSent, PingsAcked: c.pingsAcked, RTT: c.rtt,
		ConnErrors: r.ConnErrors, StreamErrors: r.StreamErrors, Floods: r.Floods,
	}
}
