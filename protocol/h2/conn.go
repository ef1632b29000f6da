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

// how a stream left the stream table, for frames that arrive after (RFC
// 9113 §5.1 "closed").
const (
	closedByUs   = 1 // we sent RST_STREAM: ignore what is in flight
	closedByPeer = 2 // the client sent RST_STREAM: frames are STREAM_CLOSED stream errors
	closedEnded  = 3 // the client had sent END_STREAM: frames are STREAM_CLOSED connection errors
)

type closedStream struct {
	id  uint32
	how uint8
}

// stream is the state of one open or half-closed stream (RFC 9113 §5.1).
// Idle streams have none; closed ones leave a closedStream record.
type stream struct {
	id          uint32
	remoteEnded bool // the client sent END_STREAM: half-closed (remote)
	localEnded  bool // we sent END_STREAM: half-closed (local)
	sentHead    bool // our final (non-1xx) response head is out
	wantWrite   bool // the handler is waiting for StreamWritable
	stalled     int64

	sendWindow int64 // what we may still send (the client's window)
	recvWindow int64 // what the client may still send
	unacked    int64 // octets consumed or dropped and not yet given back with WINDOW_UPDATE
	delivered  int64 // octets handed to Data and not yet Consumed

	contentLength int64 // -1: none
	received      int64 // DATA octets (padding excluded) received
}

// ServerConn is the server side of one HTTP/2 connection (RFC 9113): a
// state machine without I/O. Bytes read from the socket go to Feed,
// which calls the Handler; responses are written with WriteHeaders and
// WriteData; the bytes to send are in Output. It is not safe for
// concurrent use: one event loop owns it. See LIFECYCLE.md.
type ServerConn struct {
	cfg ServerConfig
	h   Handler

	parser Parser
	dec    *Decoder
	enc    *Encoder

	out     []byte
	outHead int
	outBase uint64 // total octets consumed from out since the start

	// ctrlEnds holds, for each frame we queued in answer to the client
	// (acks, resets), the absolute output offset of its end; those whose
	// end has been consumed are dropped from ctrlHead.
	ctrlEnds []uint64
	ctrlHead int

	streams      []*stream
	free         []*stream
	closed       [32]closedStream
	closedNext   int
	lastClientID uint32 // highest client stream id seen (§5.1.1)
	scratchIDs   []uint32

	fields []HeaderField
	hbuf   []byte // encoded response head

	// Field block reassembly (§4.3, §6.10).
	block       []byte
	blockID     uint32 // 0: no block pending
	blockEnd    bool   // END_STREAM of the HEADERS that started it
	blockErr    bool   // the HEADERS carried a self-dependency: reset after decoding
	blockCont   int    // CONTINUATION frames so far
	blockDirect bool

	prefaceLeft  int  // client preface octets still to check
	gotSettings  bool // the client's first SETTINGS arrived
	settingsAck  bool // the client acknowledged ours
	settingsSent int64
	settingsArm  bool // settingsSent is set

	sendConnWindow int64
	peerInitWindow int64
	peerMaxFrame   uint32
	recvConnWindow int64
	recvInitWindow int64 // window of new streams, before/after the ack of our SETTINGS
	connUnacked    int64

	outBlocked bool // WriteData was limited by MaxOutput

	peerGoAway bool
	drain      int // 0 none, 1 first GOAWAY + PING sent, 2 final GOAWAY sent
	drainAt    int64
	goAwayID   uint32 // last stream id of our final GOAWAY
	finished   bool
	err        error

	epoch    time.Time
	epochSet bool
	clock    int64 // ns since epoch, monotonic

	resets, pings, settings, empties, wupdates bucket

	stats ConnStats
}

// drainPing is the payload of the PING of a graceful shutdown.
var drainPing = [8]byte{'s', 'l', 'u', 'i', 'c', 'e', 'd', 'r'}

// NewServerConn returns a connection that has queued its server preface:
// our SETTINGS frame (RFC 9113 §3.4) and the WINDOW_UPDATE that raises
// the connection window to cfg.ConnWindowSize. The SETTINGS timeout
// starts at the first Feed or Timeout.
func NewServerConn(cfg ServerConfig, h Handler) *ServerConn {
	cfg.setDefaults()
	c := &ServerConn{
		cfg:            cfg,
		h:              h,
		dec:            NewDecoder(DefaultHeaderTableSize, cfg.MaxHeaderListSize),
		enc:            NewEncoder(),
		sendConnWindow: DefaultInitialWindowSize,
		peerInitWindow: DefaultInitialWindowSize,
		peerMaxFrame:   DefaultMaxFrameSize,
		recvConnWindow: int64(cfg.ConnWindowSize),
		recvInitWindow: max(DefaultInitialWindowSize, int64(cfg.InitialWindowSize)),
	}
	if !cfg.PrefaceRead {
		c.prefaceLeft = len(ClientPreface)
	}
	c.resets.fill(cfg.ResetBudget)
	c.pings.fill(cfg.PingBudget)
	c.settings.fill(cfg.SettingsBudget)
	c.empties.fill(cfg.EmptyDataBudget)
	c.wupdates.fill(cfg.WindowUpdateBudget)

	n := 2
	if cfg.InitialWindowSize != DefaultInitialWindowSize {
		n++
	}
	if cfg.MaxFrameSize != DefaultMaxFrameSize {
		n++
	}
	if cfg.HeaderTableSize != DefaultHeaderTableSize {
		n++
	}
	c.out = make([]byte, 0, 128)
	c.out = AppendSettingsHeader(c.out, n)
	c.out = AppendSetting(c.out, SettingMaxConcurrentStreams, cfg.MaxConcurrentStreams)
	c.out = AppendSetting(c.out, SettingMaxHeaderListSize, cfg.MaxHeaderListSize)
	if cfg.InitialWindowSize != DefaultInitialWindowSize {
		c.out = AppendSetting(c.out, SettingInitialWindowSize, cfg.InitialWindowSize)
	}
	if cfg.MaxFrameSize != DefaultMaxFrameSize {
		c.out = AppendSetting(c.out, SettingMaxFrameSize, cfg.MaxFrameSize)
	}
	if cfg.HeaderTableSize != DefaultHeaderTableSize {
		c.out = AppendSetting(c.out, SettingHeaderTableSize, cfg.HeaderTableSize)
	}
	if cfg.ConnWindowSize > DefaultInitialWindowSize {
		c.out = AppendWindowUpdate(c.out, 0, cfg.ConnWindowSize-DefaultInitialWindowSize)
	}
	return c
}

// MaxFrameLen is the largest frame Feed may need whole before it can
// consume it: the read buffer must be able to hold this many octets.
func (c *ServerConn) MaxFrameLen() int { return FrameHeaderLen + int(c.cfg.MaxFrameSize) }

func (c *ServerConn) setNow(now time.Time) {
	if !c.epochSet {
		// One nanosecond before now, so that clock values are never 0,
		// which marks an unset time.
		c.epoch, c.epochSet = now.Add(-1), true
	}
	if t := int64(now.Sub(c.epoch)); t > c.clock {
		c.clock = t
	}
	if !c.settingsArm {
		c.settingsSent, c.settingsArm = c.clock, true
	}
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
	for !c.finished {
		f, m, perr := c.parser.Next(b[n:])
		if perr == nil && m == 0 {
			break
		}
		if c.blockID != 0 && (f.Type != FrameContinuation || f.StreamID != c.blockID) {
			// §6.10: a field block is a contiguous sequence of frames.
			return n, c.fail(ErrCodeProtocol, "frame interleaved in a field block")
		}
		if perr != nil {
			code, _, conn, _ := Classify(perr)
			if conn {
				var ce ConnectionError
				errors.As(perr, &ce)
				return n, c.fail(code, ce.Reason)
			}
		}
		n += m
		if !c.gotSettings {
			// §3.4: the client preface ends with a SETTINGS frame.
			if f.Type != FrameSettings || f.IsAck() {
				return n, c.fail(ErrCodeProtocol, "client preface not followed by SETTINGS")
			}
			c.gotSettings = true
		}
		if perr != nil {
			code, _, _, _ := Classify(perr)
			c.onFrameStreamError(&f, code)
		} else {
			c.onFrame(&f)
		}
		if c.err != nil {
			return n, c.err
		}
	}
	return n, nil
}

func (c *ServerConn) onFrame(f *Frame) {
	switch f.Type {
	case FrameData:
		c.onData(f)
	case FrameHeaders:
		h, _ := f.Headers()
		c.onHeaders(f.StreamID, h.Fragment, h.EndStream, h.EndHeaders, false)
	case FramePriority:
		// §5.3.2: RFC 7540 priorities are deprecated; a PRIORITY frame
		// may come in any stream state and changes nothing.
	case FrameRSTStream:
		code, _ := f.RSTStream()
		c.onRSTStream(f.StreamID, code)
	case FrameSettings:
		c.onSettings(f)
	case FramePushPromise:
		// §8.4: only a server may push.
		c.fail(ErrCodeProtocol, "PUSH_PROMISE from a client")
	case FramePing:
		c.onPing(f)
	case FrameGoAway:
		c.onGoAway()
	case FrameWindowUpdate:
		inc, _ := f.WindowUpdate()
		c.onWindowUpdate(f.StreamID, inc)
	case FrameContinuation:
		frag, end, _ := f.Continuation()
		c.onContinuation(f.StreamID, frag, end)
	default:
		// §4.1, §5.5: frames of unknown types are ignored.
	}
}

// onFrameStreamError handles a frame Parser.Next classified as a stream
// error (§5.4.2).
func (c *ServerConn) onFrameStreamError(f *Frame, code ErrCode) {
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

// isIdle reports whether id names a stream the client has not opened yet
// (§5.1): above every id it used, or even (we never push).
func (c *ServerConn) isIdle(id uint32) bool {
	return id > c.lastClientID || id&1 == 0
}

func (c *ServerConn) find(id uint32) *stream {
	for _, s := range c.streams {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (c *ServerConn) closedHow(id uint32) uint8 {
	for i := range c.closed {
		if c.closed[i].id == id {
			return c.closed[i].how
		}
	}
	return 0
}

func (c *ServerConn) remember(id uint32, how uint8) {
	c.closed[c.closedNext] = closedStream{id, how}
	c.closedNext = (c.closedNext + 1) % len(c.closed)
}

// removeStream takes st out of the table, returning to the connection
// window the octets the handler will no longer Consume.
func (c *ServerConn) removeStream(st *stream, how uint8) {
	for i, s := range c.streams {
		if s == st {
			last := len(c.streams) - 1
			c.streams[i] = c.streams[last]
			c.streams[last] = nil
			c.streams = c.streams[:last]
			break
		}
	}
	c.remember(st.id, how)
	if st.delivered > 0 {
		c.giveBackConn(st.delivered)
	}
	*st = stream{}
	if len(c.free) < 8 {
		c.free = append(c.free, st)
	}
	c.checkDone()
}

// closeIfDone closes a stream both sides ended (§5.1: closed).
func (c *ServerConn) closeIfDone(st *stream) {
	if st.localEnded && st.remoteEnded {
		c.removeStream(st, closedEnded)
	}
}

// --- frames -----------------------------------------------------------

func (c *ServerConn) onData(f *Frame) {
	id := f.StreamID
	data, _ := f.Data()
	length := int64(f.Length)
	if c.isIdle(id) {
		c.fail(ErrCodeProtocol, "DATA on an idle stream")
		return
	}
	// §6.9: every DATA frame counts against the connection window,
	// whatever the state of its stream, padding included.
	if length > c.recvConnWindow {
		c.fail(ErrCodeFlowControl, "DATA beyond the connection window")
		return
	}
	c.recvConnWindow -= length
	endStream := f.EndStream()
	if len(data) == 0 && !endStream && !c.empties.take(c.cfg.EmptyDataBudget, c.clock) {
		c.flood(&c.stats.Floods.EmptyData, "empty DATA frames")
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
		switch c.closedHow(id) {
		case closedByUs:
			// §5.1: in flight when we reset it; ignored.
		case closedEnded:
			c.fail(ErrCodeStreamClosed, "DATA after END_STREAM")
		case closedByPeer:
			c.streamError(id, ErrCodeStreamClosed)
		default:
			// Closed too long ago to know how: answer without counting it
			// against the client, it may be a late frame after our reset.
			c.sendReset(id, ErrCodeStreamClosed, false)
		}
		return
	}
	if length > st.recvWindow {
		c.giveBackConn(length)
		c.streamError(id, ErrCodeFlowControl)
		return
	}
	st.recvWindow -= length
	if pad := length - int64(len(data)); pad > 0 {
		// The handler never sees padding: give it back at once.
		c.giveBackConn(pad)
		c.giveBackStream(st, pad)
	}
	st.received += int64(len(data))
	if st.contentLength >= 0 && (st.received > st.contentLength || endStream && st.received != st.contentLength) {
		// §8.1.1: content-length must equal the sum of DATA lengths.
		c.giveBackConn(int64(len(data)))
		c.streamError(id, ErrCodeProtocol)
		return
	}
	st.delivered += int64(len(data))
	if endStream {
		st.remoteEnded = true
	}
	c.h.Data(id, data, endStream)
	if endStream {
		if st = c.find(id); st != nil {
			c.closeIfDone(st)
		}
	}
}

func (c *ServerConn) onHeaders(id uint32, frag []byte, endStream, endHeaders, selfDep bool) {
	if id&1 == 0 {
		// §5.1.1: client streams are odd.
		c.fail(ErrCodeProtocol, "HEADERS on an even stream")
		return
	}
	if endHeaders {
		c.onFieldBlock(id, frag, endStream, selfDep)
		return
	}
	if uint32(len(frag)) > c.cfg.MaxHeaderBlockSize {
		c.flood(&c.stats.Floods.Continuation, "field block too large")
		return
	}
	c.blockID, c.blockEnd, c.blockErr, c.blockCont = id, endStream, selfDep, 0
	c.block = append(c.block[:0], frag...)
}

func (c *ServerConn) onContinuation(id uint32, frag []byte, endHeaders bool) {
	if c.blockID == 0 {
		// §6.10: CONTINUATION only follows HEADERS without END_HEADERS.
		c.fail(ErrCodeProtocol, "CONTINUATION without a field block")
		return
	}
	c.blockCont++
	if c.blockCont > c.cfg.MaxContinuations || uint64(len(c.block))+uint64(len(frag)) > uint64(c.cfg.MaxHeaderBlockSize) {
		// CVE-2024-27316: a block that never ends, or ends huge.
		c.flood(&c.stats.Floods.Continuation, "CONTINUATION flood")
		return
	}
	c.block = append(c.block, frag...)
	if !endHeaders {
		return
	}
	c.blockID = 0
	c.onFieldBlock(id, c.block, c.blockEnd, c.blockErr)
	if cap(c.block) > 16<<10 {
		// Large blocks are rare: do not keep their buffer.
		c.block = nil
	}
}

// onFieldBlock handles a complete field block of a HEADERS frame (§4.3).
func (c *ServerConn) onFieldBlock(id uint32, block []byte, endStream, selfDep bool) {
	// Decode first, whatever happens to the stream: every block changes
	// the HPACK state (§4.3).
	fields, derr := c.dec.Decode(c.fields[:0], block)
	if derr != nil && derr != ErrHeaderListTooLarge {
		c.fail(ErrCodeCompression, "HPACK decoding failed")
		return
	}
	tooLarge := derr == ErrHeaderListTooLarge
	c.fields = fields[:0]

	if st := c.find(id); st != nil {
		c.onTrailers(st, fields, endStream, tooLarge, selfDep)
		return
	}
	if id <= c.lastClientID {
		switch c.closedHow(id) {
		case closedByUs:
		case closedByPeer:
			c.streamError(id, ErrCodeStreamClosed)
		case closedEnded:
			c.fail(ErrCodeStreamClosed, "HEADERS after END_STREAM")
		default:
			// §5.1.1: ids only increase; this one was never opened or was
			// closed long ago.
			c.fail(ErrCodeProtocol, "HEADERS on a closed stream")
		}
		return
	}
	// A new stream. Using id closes every idle stream below it (§5.1.1).
	c.lastClientID = id
	if c.drain == 2 && id > c.goAwayID {
		// §6.8: after our final GOAWAY new streams are ignored.
		c.remember(id, closedByUs)
		return
	}
	if selfDep {
		c.streamError(id, ErrCodeProtocol)
		return
	}
	if uint32(len(c.streams)) >= c.cfg.MaxConcurrentStreams {
		// §5.1.2.
		c.stats.StreamsRefused++
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
	var st *stream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		st = new(stream)
	}
	*st = stream{
		id:            id,
		remoteEnded:   endStream,
		sendWindow:    c.peerInitWindow,
		recvWindow:    c.recvInitWindow,
		contentLength: cl,
	}
	c.streams = append(c.streams, st)
	c.stats.StreamsOpened++
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
	if st = c.find(id); st != nil {
		c.closeIfDone(st)
	}
}

// answerTooLarge answers a request head above MaxHeaderListSize with 431
// (RFC 6585 §5, RFC 9113 §10.5.1) instead of a reset, so that a browser
// shows an error rather than retrying. The handler never hears of it.
func (c *ServerConn) answerTooLarge(id uint32, endStream bool) {
	c.stats.HeadersTooLarge++
	c.hbuf = c.enc.Append(c.hbuf[:0], HeaderField{Name: ":status", Value: "431"}, HeaderField{Name: "content-length", Value: "0"})
	c.appendHeaderBlock(id, c.hbuf, true)
	if !endStream {
		// §8.1: the response is complete; stop the upload without error.
		c.sendReset(id, ErrCodeNo, false)
	} else {
		c.remember(id, closedByUs)
	}
	if !c.resets.take(c.cfg.ResetBudget, c.clock) {
		c.flood(&c.stats.Floods.MadeYouReset, "too many rejected streams")
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
	c.stats.ResetsReceived++
	rapid := !st.localEnded
	c.removeStream(st, closedByPeer)
	c.h.StreamReset(id, code)
	// CVE-2023-44487: a reset of a stream we are still answering costs a
	// backend exchange; a reset after our END_STREAM costs nothing.
	if rapid && !c.resets.take(c.cfg.ResetBudget, c.clock) {
		c.flood(&c.stats.Floods.RapidReset, "rapid reset")
	}
}

func (c *ServerConn) onSettings(f *Frame) {
	if f.IsAck() {
		if c.settingsAck {
			return // an ACK we did not ask for: nothing to apply
		}
		c.settingsAck = true
		// §6.5.3: our values bind the client only from now on.
		c.parser.MaxFrameSize = c.cfg.MaxFrameSize
		c.dec.SetMaxTableSize(c.cfg.HeaderTableSize)
		if delta := int64(c.cfg.InitialWindowSize) - c.recvInitWindow; delta != 0 {
			for _, st := range c.streams {
				st.recvWindow += delta
			}
		}
		c.recvInitWindow = int64(c.cfg.InitialWindowSize)
		return
	}
	if !c.settings.take(c.cfg.SettingsBudget, c.clock) {
		c.flood(&c.stats.Floods.Settings, "SETTINGS flood")
		return
	}
	opened := false
	for i, n := 0, f.NumSettings(); i < n; i++ {
		// §6.5.3: values are applied in the order they appear.
		s := f.SettingAt(i)
		switch s.ID {
		case SettingHeaderTableSize:
			c.enc.SetMaxTableSizeLimit(s.Val)
		case SettingInitialWindowSize:
			// §6.9.2: the change applies to every open stream's window,
			// which may become negative; above 2^31-1 is an error.
			delta := int64(s.Val) - c.peerInitWindow
			c.peerInitWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > MaxWindowSize {
					c.fail(ErrCodeFlowControl, "INITIAL_WINDOW_SIZE overflows a stream window")
					return
				}
			}
			if delta > 0 {
				opened = true
			}
		case SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		}
		// ENABLE_PUSH: we never push. MAX_CONCURRENT_STREAMS: limits
		// streams we would open. MAX_HEADER_LIST_SIZE is advisory.
		// Unknown settings are ignored (§6.5.2).
	}
	c.appendControl(AppendSettingsAck(c.out))
	if opened && c.err == nil {
		c.notifyWritable(0)
	}
}

func (c *ServerConn) onPing(f *Frame) {
	data, _ := f.Ping()
	if f.IsAck() {
		if c.drain == 1 && data == drainPing {
			c.finalGoAway()
		}
		return
	}
	if !c.pings.take(c.cfg.PingBudget, c.clock) {
		c.flood(&c.stats.Floods.Ping, "PING flood")
		return
	}
	// §6.7: answer with the same payload.
	c.appendControl(AppendPing(c.out, true, data))
}

func (c *ServerConn) onGoAway() {
	// §6.8: the client opens no more streams; those open finish.
	c.peerGoAway = true
	c.checkDone()
}

func (c *ServerConn) onWindowUpdate(id uint32, inc uint32) {
	if !c.wupdates.take(c.cfg.WindowUpdateBudget, c.clock) {
		c.flood(&c.stats.Floods.WindowUpdate, "WINDOW_UPDATE flood")
		return
	}
	if id == 0 {
		c.sendConnWindow += int64(inc)
		if c.sendConnWindow > MaxWindowSize {
			c.fail(ErrCodeFlowControl, "connection window above 2^31-1")
			return
		}
		if c.sendConnWindow > 0 {
			c.notifyWritable(0)
		}
		return
	}
	if c.isIdle(id) {
		c.fail(ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
		return
	}
	st := c.find(id)
	if st == nil {
		// §5.1: after our END_STREAM or RST_STREAM the client may still
		// update the window for a while; nothing to do.
		return
	}
	st.sendWindow += int64(inc)
	if st.sendWindow > MaxWindowSize {
		c.streamError(id, ErrCodeFlowControl)
		return
	}
	if st.sendWindow > 0 && c.sendConnWindow > 0 {
		c.notifyWritable(id)
	}
}

// notifyWritable calls StreamWritable for id, or for every waiting stream
// when id is 0, if it can send now. The ids are copied first: the handler
// may reset streams from inside the callback.
func (c *ServerConn) notifyWritable(id uint32) {
	ids := c.takeScratch()
	for _, st := range c.streams {
		if st.wantWrite && (id == 0 || st.id == id) && c.sendable(st) > 0 {
			st.wantWrite = false
			st.stalled = 0
			ids = append(ids, st.id)
		}
	}
	for _, sid := range ids {
		if c.err != nil {
			break
		}
		if c.find(sid) != nil {
			c.h.StreamWritable(sid)
		}
	}
	c.scratchIDs = ids[:0]
}

// takeScratch lends the scratch id slice; a nested caller (a handler
// callback calling back in) gets a fresh one rather than the same array.
func (c *ServerConn) takeScratch() []uint32 {
	ids := c.scratchIDs[:0]
	c.scratchIDs = nil
	return ids
}

// --- errors -----------------------------------------------------------

// streamError resets a stream because of the client's frames (§5.4.2),
// charging the reset budget (CVE-2025-8671).
func (c *ServerConn) streamError(id uint32, code ErrCode) {
	if int(code) < len(c.stats.StreamErrors) {
		c.stats.StreamErrors[code]++
	}
	c.sendReset(id, code, true)
	if c.err == nil && !c.resets.take(c.cfg.ResetBudget, c.clock) {
		c.flood(&c.stats.Floods.MadeYouReset, "too many streams reset for errors")
	}
}

// sendReset queues RST_STREAM and, if the stream is open, removes it and
// tells the handler when notify is set.
func (c *ServerConn) sendReset(id uint32, code ErrCode, notify bool) {
	c.stats.ResetsSent++
	c.appendControl(AppendRSTStream(c.out, id, code))
	st := c.find(id)
	if st == nil {
		if id <= c.lastClientID && c.closedHow(id) == 0 {
			c.remember(id, closedByUs)
		}
		return
	}
	c.removeStream(st, closedByUs)
	if notify {
		c.h.StreamReset(id, code)
	}
}

func (c *ServerConn) flood(counter *uint64, reason string) {
	*counter++
	c.fail(ErrCodeEnhanceYourCalm, reason)
}

// fail raises a connection error (§5.4.1): GOAWAY with the last stream
// we processed, every stream reported reset, and nothing more accepted.
func (c *ServerConn) fail(code ErrCode, reason string) error {
	if c.err != nil {
		return c.err
	}
	c.err = ConnectionError{Code: code, Reason: reason}
	if int(code) < len(c.stats.ConnErrors) {
		c.stats.ConnErrors[code]++
	}
	c.appendGoAway(c.lastClientID, code, reason)
	c.finished = true
	ids := c.takeScratch()
	for _, st := range c.streams {
		ids = append(ids, st.id)
		*st = stream{}
	}
	c.streams = c.streams[:0]
	c.blockID = 0
	for _, id := range ids {
		c.h.StreamReset(id, code)
	}
	c.scratchIDs = ids[:0]
	return c.err
}

func (c *ServerConn) appendGoAway(last uint32, code ErrCode, reason string) {
	c.stats.GoAwaySent++
	c.stats.LastGoAwayCode = code
	c.out = AppendGoAway(c.out, last, code, nil)
	if reason != "" {
		// Debug data (§6.8) without a temporary []byte.
		n := len(c.out)
		c.out = append(c.out, reason...)
		l := uint32(8 + len(reason))
		start := n - 8 - FrameHeaderLen
		c.out[start], c.out[start+1], c.out[start+2] = byte(l>>16), byte(l>>8), byte(l)
	}
}

// appendControl stores out, which ends with a frame queued in answer to
// the client, and bounds how many such frames wait in Output.
func (c *ServerConn) appendControl(out []byte) {
	c.out = out
	if c.err != nil {
		return
	}
	if c.ctrlHead > 0 && 2*c.ctrlHead >= len(c.ctrlEnds) {
		k := copy(c.ctrlEnds, c.ctrlEnds[c.ctrlHead:])
		c.ctrlEnds, c.ctrlHead = c.ctrlEnds[:k], 0
	}
	c.ctrlEnds = append(c.ctrlEnds, c.outBase+uint64(len(c.out)-c.outHead))
	if len(c.ctrlEnds)-c.ctrlHead > c.cfg.MaxQueuedControlFrames {
		c.flood(&c.stats.Floods.ControlQueue, "client does not read its control frames")
	}
}

// --- receive flow control ---------------------------------------------

// giveBackConn returns n octets to the connection window, announcing
// them when half the window is due (§6.9).
func (c *ServerConn) giveBackConn(n int64) {
	c.connUnacked += n
	if c.connUnacked >= int64(c.cfg.ConnWindowSize)/2 && c.err == nil {
		c.out = AppendWindowUpdate(c.out, 0, uint32(c.connUnacked))
		c.recvConnWindow += c.connUnacked
		c.connUnacked = 0
	}
}

func (c *ServerConn) giveBackStream(st *stream, n int64) {
	st.unacked += n
	if st.remoteEnded || c.err != nil {
		return // the client sends nothing more on it
	}
	if st.unacked >= max(int64(c.cfg.InitialWindowSize)/2, 1) {
		c.out = AppendWindowUpdate(c.out, st.id, uint32(st.unacked))
		st.recvWindow += st.unacked
		st.unacked = 0
	}
}

// Consumed reports that the handler forwarded n octets of id's request
// body: they are given back to the client's windows, with a
// WINDOW_UPDATE once half a window is due. Octets of a stream that is
// gone were given back when it closed; Consumed on it does nothing.
func (c *ServerConn) Consumed(id uint32, n int) {
	st := c.find(id)
	if st == nil || n <= 0 || c.err != nil {
		return
	}
	m := min(int64(n), st.delivered)
	st.delivered -= m
	c.giveBackStream(st, m)
	c.giveBackConn(m)
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
	case st.sentHead:
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
		st.sentHead = true
	}
	c.hbuf = c.enc.Append(c.hbuf[:0], fields...)
	c.appendHeaderBlock(id, c.hbuf, endStream)
	if cap(c.hbuf) > 16<<10 {
		c.hbuf = nil
	}
	if endStream {
		st.localEnded = true
		st.wantWrite, st.stalled = false, 0
		c.closeIfDone(st)
	}
	return nil
}

// appendHeaderBlock writes an encoded field block as HEADERS and as many
// CONTINUATION frames as the client's MAX_FRAME_SIZE requires (§4.3).
func (c *ServerConn) appendHeaderBlock(id uint32, block []byte, endStream bool) {
	max := int(c.peerMaxFrame)
	first := min(len(block), max)
	c.out = AppendHeaders(c.out, id, endStream, first == len(block), block[:first])
	for rest := block[first:]; len(rest) > 0; {
		k := min(len(rest), max)
		c.out = AppendContinuation(c.out, id, k == len(rest), rest[:k])
		rest = rest[k:]
	}
}

// sendable is what WriteData could take for st now.
func (c *ServerConn) sendable(st *stream) int64 {
	w := min(st.sendWindow, c.sendConnWindow, int64(c.cfg.MaxOutput-(len(c.out)-c.outHead)))
	return max(w, 0)
}

// SendWindow returns how many octets WriteData would accept for id now.
// When it returns 0 for an open stream, StreamWritable follows when that
// changes.
func (c *ServerConn) SendWindow(id uint32) int {
	st := c.find(id)
	if st == nil || st.localEnded || c.err != nil {
		return 0
	}
	w := c.sendable(st)
	if w == 0 {
		c.blocked(st)
	}
	return int(w)
}

// blocked records that st waits: for StreamWritable, and for the stall
// timer when the client's windows are what stops it.
func (c *ServerConn) blocked(st *stream) {
	st.wantWrite = true
	if st.sendWindow <= 0 || c.sendConnWindow <= 0 {
		if st.stalled == 0 {
			st.stalled = c.clock
		}
	} else {
		c.outBlocked = true
	}
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
	st := c.find(id)
	if st == nil || st.localEnded || !st.sentHead || c.err != nil {
		return 0
	}
	n := int(min(int64(len(p)), c.sendable(st)))
	if n < len(p) {
		defer c.blocked(st) // after the windows are charged
	} else {
		st.stalled = 0
	}
	if n == 0 && !(endStream && len(p) == 0) {
		return 0
	}
	end := endStream && n == len(p)
	frames := 0
	for off := 0; off < n || (frames == 0 && end); {
		k := min(n-off, int(c.peerMaxFrame))
		c.out = AppendData(c.out, id, end && off+k == n, p[off:off+k])
		off += k
		frames++
	}
	st.sendWindow -= int64(n)
	c.sendConnWindow -= int64(n)
	// The client answers data with WINDOW_UPDATEs: let it.
	c.wupdates.credit(c.cfg.WindowUpdateBudget, c.clock, float64(frames)+float64(n)/2048)
	if end {
		st.localEnded = true
		st.wantWrite, st.stalled = false, 0
		c.closeIfDone(st)
	}
	return n
}

// Reset ends stream id from our side with RST_STREAM(code) (§6.4), e.g.
// because the backend failed, or with NO_ERROR to stop an upload after a
// complete response (§8.1). The handler is not called back.
func (c *ServerConn) Reset(id uint32, code ErrCode) {
	if c.err != nil {
		return
	}
	st := c.find(id)
	if st == nil {
		return
	}
	c.stats.ResetsSent++
	c.out = AppendRSTStream(c.out, id, code)
	c.removeStream(st, closedByUs)
}

// Output returns the octets to write to the socket. The slice is valid
// until the next call of any other method.
func (c *ServerConn) Output() []byte { return c.out[c.outHead:] }

// Consume drops the first n octets of Output, which were written. If
// WriteData was held back by MaxOutput and at least half of it is free
// again, the waiting streams get StreamWritable from inside Consume.
func (c *ServerConn) Consume(n int) {
	n = min(n, len(c.out)-c.outHead)
	if n <= 0 {
		return
	}
	c.outHead += n
	c.outBase += uint64(n)
	for c.ctrlHead < len(c.ctrlEnds) && c.ctrlEnds[c.ctrlHead] <= c.outBase {
		c.ctrlHead++
	}
	if c.ctrlHead == len(c.ctrlEnds) {
		c.ctrlEnds, c.ctrlHead = c.ctrlEnds[:0], 0
	}
	switch {
	case c.outHead == len(c.out):
		c.out, c.outHead = c.out[:0], 0
	case c.outHead >= 4096 && 2*c.outHead >= len(c.out):
		// Slide the rest down rather than let the buffer grow forever.
		k := copy(c.out, c.out[c.outHead:])
		c.out, c.outHead = c.out[:k], 0
	}
	if c.outBlocked && len(c.out)-c.outHead <= c.cfg.MaxOutput/2 && c.err == nil {
		c.outBlocked = false
		c.notifyWritable(0)
	}
}

// ShrinkBuffers releases the output buffer if it is empty, and the
// scratch buffers: call it when the connection goes idle, to hold only
// kilobytes per idle connection.
func (c *ServerConn) ShrinkBuffers() {
	if c.outHead == len(c.out) {
		c.out, c.outHead = nil, 0
	}
	if len(c.streams) == 0 {
		c.streams, c.free = nil, nil
	}
	c.hbuf, c.fields, c.scratchIDs = nil, nil, nil
	if c.blockID == 0 {
		c.block = nil
	}
	if c.ctrlHead == len(c.ctrlEnds) {
		c.ctrlEnds, c.ctrlHead = nil, 0
	}
}

// --- shutdown and timers ------------------------------------------------

// Shutdown starts a graceful drain (§6.8): GOAWAY with the largest stream
// id and a PING, then, once the PING is acknowledged (or after
// DrainPingTimeout), GOAWAY with the last stream id really received.
// Streams up to it finish; later ones are ignored. Done reports true when
// none is left.
func (c *ServerConn) Shutdown(now time.Time) {
	c.setNow(now)
	if c.err != nil || c.drain != 0 {
		return
	}
	c.drain = 1
	c.drainAt = c.clock + int64(c.cfg.DrainPingTimeout)
	c.appendGoAway(streamIDMask, ErrCodeNo, "")
	c.out = AppendPing(c.out, false, drainPing)
}

func (c *ServerConn) finalGoAway() {
	c.drain = 2
	c.goAwayID = c.lastClientID
	c.appendGoAway(c.goAwayID, ErrCodeNo, "")
	c.checkDone()
}

// checkDone ends a draining connection that has no stream left: after our
// final GOAWAY, or after the client's GOAWAY (then ours, NO_ERROR, tells
// it we saw everything).
func (c *ServerConn) checkDone() {
	if c.finished || len(c.streams) != 0 || c.blockID != 0 {
		return
	}
	switch {
	case c.drain == 2:
		c.finished = true
	case c.peerGoAway:
		c.appendGoAway(c.lastClientID, ErrCodeNo, "")
		c.finished = true
	}
}

// Done reports that the connection has nothing more to do: it failed, or
// it drained (after Shutdown or the client's GOAWAY) with no stream left.
// The caller flushes Output and closes the socket.
func (c *ServerConn) Done() bool { return c.finished }

// Err returns the connection error that ended the connection, if any.
func (c *ServerConn) Err() error { return c.err }

// Deadline returns the earliest time Timeout must be called: the SETTINGS
// ack timeout, the drain PING timeout, a stall. Zero means none.
func (c *ServerConn) Deadline() time.Time {
	if c.finished {
		return time.Time{}
	}
	var d int64 = -1
	earlier := func(t int64) {
		if d < 0 || t < d {
			d = t
		}
	}
	if !c.settingsAck && c.settingsArm {
		earlier(c.settingsSent + int64(c.cfg.SettingsTimeout))
	}
	if c.drain == 1 {
		earlier(c.drainAt)
	}
	for _, st := range c.streams {
		if st.stalled != 0 {
			earlier(st.stalled + int64(c.cfg.StallTimeout))
		}
	}
	if d < 0 {
		return time.Time{}
	}
	return c.epoch.Add(time.Duration(d))
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
	if !c.settingsAck && c.clock >= c.settingsSent+int64(c.cfg.SettingsTimeout) {
		c.fail(ErrCodeSettingsTimeout, "SETTINGS not acknowledged")
		return
	}
	if c.drain == 1 && c.clock >= c.drainAt {
		c.finalGoAway()
	}
	ids := c.takeScratch()
	for _, st := range c.streams {
		if st.stalled != 0 && c.clock >= st.stalled+int64(c.cfg.StallTimeout) {
			ids = append(ids, st.id)
		}
	}
	for _, id := range ids {
		if c.find(id) != nil && c.err == nil {
			c.stats.StallResets++
			c.sendReset(id, ErrCodeCancel, true)
		}
	}
	c.scratchIDs = ids[:0]
}

// Streams returns the number of open and half-closed streams.
func (c *ServerConn) Streams() int { return len(c.streams) }

// Stats returns the connection's counters.
func (c *ServerConn) Stats() ConnStats { return c.stats }
