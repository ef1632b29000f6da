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
	// before the connection ends with GOAWAY(SETTINGS_TIMEOUT) (RFC 9113
	// §6.5.3). Default 10 s.
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

func (cfg *ClientConfig) setDefaults() {
	def32 := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def32(&cfg.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	def32(&cfg.InitialWindowSize, DefaultClientInitialWindowSize)
	def32(&cfg.ConnWindowSize, DefaultConnWindowSize)
	def32(&cfg.MaxFrameSize, DefaultMaxFrameSize)
	def32(&cfg.MaxHeaderListSize, DefaultMaxHeaderListSize)
	def32(&cfg.HeaderTableSize, DefaultHeaderTableSize)
	cfg.InitialWindowSize = min(cfg.InitialWindowSize, MaxWindowSize)
	// The connection window cannot go below its initial value: there is
	// no frame for that (RFC 9113 §6.9.2).
	cfg.ConnWindowSize = max(min(cfg.ConnWindowSize, MaxWindowSize), DefaultInitialWindowSize)
	cfg.MaxFrameSize = max(min(cfg.MaxFrameSize, MaxFrameSizeLimit), DefaultMaxFrameSize)
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	if cfg.SettingsTimeout <= 0 {
		cfg.SettingsTimeout = DefaultSettingsTimeout
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.MaxInterimResponses <= 0 {
		cfg.MaxInterimResponses = DefaultMaxInterimResponses
	}
	def32(&cfg.MaxHeaderBlockSize, 2*cfg.MaxHeaderListSize)
	if cfg.MaxContinuations <= 0 {
		cfg.MaxContinuations = DefaultMaxContinuations
	}
	if cfg.MaxQueuedControlFrames <= 0 {
		cfg.MaxQueuedControlFrames = DefaultMaxQueuedControl
	}
	defBudget := func(b *Budget, d Budget) {
		if *b == (Budget{}) {
			*b = d
		}
	}
	defBudget(&cfg.ResetBudget, defaultResetBudget)
	defBudget(&cfg.PingBudget, defaultPingBudget)
	defBudget(&cfg.SettingsBudget, defaultSettingsBudget)
	defBudget(&cfg.EmptyDataBudget, defaultEmptyDataBudget)
	defBudget(&cfg.WindowUpdateBudget, defaultWindowUpdateBudget)
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

// clientStream is the state of one open or half-closed stream we opened
// (RFC 9113 §5.1, seen from the client). Idle streams have none; closed
// ones leave a closedStream record.
type clientStream struct {
	id          uint32
	localEnded  bool // we sent END_STREAM: half-closed (local)
	remoteEnded bool // the server sent END_STREAM: half-closed (remote)
	gotHead     bool // the final (non-1xx) response head arrived
	noBody      bool // a HEAD request: the response has no content (§8.1.1)
	wantWrite   bool // the handler waits for StreamWritable
	interim     int  // 1xx heads received

	sendWindow int64 // what we may still send (the server's window)
	recvWindow int64 // what the server may still send
	unacked    int64 // octets consumed or dropped, not yet given back
	delivered  int64 // octets handed to ResponseData, not yet Consumed

	contentLength int64 // of the response; -1: none
	received      int64 // DATA octets (padding excluded) received
}

// ClientConn is the client side of one HTTP/2 connection (RFC 9113),
// cleartext with prior knowledge (h2c, §3.3) or over TLS: a state machine
// without I/O, for a proxy that multiplexes requests to one backend.
// Requests go in with OpenStream, WriteData and WriteTrailers; the bytes
// to send are in Output; bytes read from the socket go to Feed, which
// calls the ClientHandler. It is not safe for concurrent use: one event
// loop owns it. See LIFECYCLE.md.
type ClientConn struct {
	cfg ClientConfig
	h   ClientHandler

	parser Parser
	dec    *Decoder
	enc    *Encoder

	out     []byte
	outHead int
	outBase uint64 // octets consumed from out since the start

	ctrlEnds []uint64 // output offsets of the ends of queued answers
	ctrlHead int

	streams    []*clientStream
	free       []*clientStream
	closed     [32]closedStream
	closedNext int
	nextID     uint32 // the id OpenStream uses next
	lastID     uint32 // the highest id we opened (0: none)
	scratchIDs []uint32

	fields []HeaderField
	hbuf   []byte

	// Field block reassembly (§4.3, §6.10).
	block     []byte
	blockID   uint32 // 0: no block pending
	blockEnd  bool
	blockErr  bool
	blockCont int

	gotSettings  bool // the server's first SETTINGS arrived
	settingsAck  bool // the server acknowledged ours
	settingsSent int64
	settingsArm  bool

	sendConnWindow    int64
	peerInitWindow    int64
	peerMaxFrame      uint32
	peerMaxStreams    uint32
	peerMaxHeaderList uint32 // 0: unlimited
	recvConnWindow    int64
	connUnacked       int64

	outBlocked bool

	pingData [8]byte
	pingSent int64 // 0: no PING outstanding
	pingSeq  uint64

	peerGoAway bool
	goAwayLast uint32
	shutdown   bool
	finished   bool
	err        error

	epoch    time.Time
	epochSet bool
	clock    int64

	resets, pings, settings, empties, wupdates bucket

	stats ClientStats
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
	cfg.setDefaults()
	c := &ClientConn{
		cfg:            cfg,
		h:              h,
		dec:            NewDecoder(DefaultHeaderTableSize, cfg.MaxHeaderListSize),
		enc:            NewEncoder(),
		nextID:         1,
		sendConnWindow: DefaultInitialWindowSize,
		peerInitWindow: DefaultInitialWindowSize,
		peerMaxFrame:   DefaultMaxFrameSize,
		peerMaxStreams: assumedMaxStreams,
		recvConnWindow: int64(cfg.ConnWindowSize),
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
	c.out = append(c.out, ClientPreface...)
	c.out = AppendSettingsHeader(c.out, n)
	// §6.5.2, §8.4: a client that sends ENABLE_PUSH 0 never sees
	// PUSH_PROMISE; one arriving is a PROTOCOL_ERROR.
	c.out = AppendSetting(c.out, SettingEnablePush, 0)
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
func (c *ClientConn) MaxFrameLen() int { return FrameHeaderLen + int(c.cfg.MaxFrameSize) }

func (c *ClientConn) setNow(now time.Time) {
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

// --- stream table -----------------------------------------------------

func (c *ClientConn) find(id uint32) *clientStream {
	for _, s := range c.streams {
		if s.id == id {
			return s
		}
	}
	return nil
}

// isIdle reports whether id names a stream we have not opened (§5.1):
// above every id we used, or even (the server may open none: push is
// disabled).
func (c *ClientConn) isIdle(id uint32) bool {
	return id > c.lastID || id&1 == 0
}

func (c *ClientConn) closedHow(id uint32) uint8 {
	for i := range c.closed {
		if c.closed[i].id == id {
			return c.closed[i].how
		}
	}
	return 0
}

func (c *ClientConn) remember(id uint32, how uint8) {
	c.closed[c.closedNext] = closedStream{id, how}
	c.closedNext = (c.closedNext + 1) % len(c.closed)
}

// removeStream takes st out of the table, giving back to the connection
// window the octets the handler will no longer Consume.
func (c *ClientConn) removeStream(st *clientStream, how uint8) {
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
	*st = clientStream{}
	if len(c.free) < 8 {
		c.free = append(c.free, st)
	}
	c.checkDone()
}

func (c *ClientConn) closeIfDone(st *clientStream) {
	if st.localEnded && st.remoteEnded {
		c.removeStream(st, closedEnded)
	}
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
			var ce ConnectionError
			if errors.As(perr, &ce) {
				return n, c.fail(ce.Code, ce.Reason)
			}
		}
		n += m
		if !c.gotSettings {
			// §3.4: the server connection preface is a SETTINGS frame.
			if f.Type != FrameSettings || f.IsAck() {
				return n, c.fail(ErrCodeProtocol, "server preface is not a SETTINGS frame")
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

func (c *ClientConn) onFrame(f *Frame) {
	switch f.Type {
	case FrameData:
		c.onData(f)
	case FrameHeaders:
		h, _ := f.Headers()
		c.onHeaders(f.StreamID, h.Fragment, h.EndStream, h.EndHeaders, false)
	case FramePriority:
		// §5.3.2: deprecated; allowed in any state, changes nothing.
	case FrameRSTStream:
		code, _ := f.RSTStream()
		c.onRSTStream(f.StreamID, code)
	case FrameSettings:
		c.onSettings(f)
	case FramePushPromise:
		// §8.4: we sent SETTINGS_ENABLE_PUSH 0.
		c.fail(ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	case FramePing:
		c.onPing(f)
	case FrameGoAway:
		last, code, _, _ := f.GoAway()
		c.onGoAway(last, code)
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
func (c *ClientConn) onFrameStreamError(f *Frame, code ErrCode) {
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

func (c *ClientConn) onHeaders(id uint32, frag []byte, endStream, endHeaders, selfDep bool) {
	if id&1 == 0 {
		// §5.1.1, §8.4: with push disabled the server opens no stream.
		c.fail(ErrCodeProtocol, "HEADERS on a server-initiated stream")
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

func (c *ClientConn) onContinuation(id uint32, frag []byte, endHeaders bool) {
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
		c.block = nil
	}
}

// onFieldBlock handles a complete field block of a HEADERS frame (§4.3):
// an interim or final response head, or trailers.
func (c *ClientConn) onFieldBlock(id uint32, block []byte, endStream, selfDep bool) {
	// Decode first, whatever happens to the stream: every block changes
	// the HPACK state (§4.3).
	fields, derr := c.dec.Decode(c.fields[:0], block)
	if derr != nil && derr != ErrHeaderListTooLarge {
		c.fail(ErrCodeCompression, "HPACK decoding failed")
		return
	}
	c.fields = fields[:0]
	if id > c.lastID {
		// §5.1: HEADERS from the server on an idle stream.
		c.fail(ErrCodeProtocol, "HEADERS on an idle stream")
		return
	}
	st := c.find(id)
	if st == nil {
		switch c.closedHow(id) {
		case closedByPeer:
			c.streamError(id, ErrCodeStreamClosed)
		case closedEnded:
			// §5.1: frames after END_STREAM.
			c.fail(ErrCodeStreamClosed, "HEADERS after END_STREAM")
		default:
			// Reset by us (refused by GOAWAY included), or closed long
			// ago: frames in flight are ignored (§5.1 closed).
		}
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
	case derr == ErrHeaderListTooLarge:
		c.stats.HeadersTooLarge++
		c.streamError(id, ErrCodeProtocol)
		return
	}
	if st.gotHead {
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
		if endStream || st.interim > c.cfg.MaxInterimResponses {
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
	st.gotHead = true
	st.contentLength = cl
	st.remoteEnded = endStream
	c.h.ResponseHeaders(id, fields, endStream, false)
	if endStream {
		c.afterRemoteEnd(id)
	}
}

// afterRemoteEnd closes id if our side was over too; a stream whose
// response is complete before its request keeps its send side (§8.1).
func (c *ClientConn) afterRemoteEnd(id uint32) {
	if st := c.find(id); st != nil {
		c.closeIfDone(st)
	}
}

func (c *ClientConn) onData(f *Frame) {
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
	if st == nil {
		c.giveBackConn(length)
		switch c.closedHow(id) {
		case closedByPeer:
			c.streamError(id, ErrCodeStreamClosed)
		case closedEnded:
			c.fail(ErrCodeStreamClosed, "DATA after END_STREAM")
		default:
			// Reset by us or long closed: in flight, ignored (§5.1).
		}
		return
	}
	if st.remoteEnded || !st.gotHead {
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
		if !c.resets.take(c.cfg.ResetBudget, c.clock) {
			c.flood(&c.stats.Floods.RapidReset, "RST_STREAM flood")
		}
		return
	}
	c.stats.ResetsReceived++
	if code == ErrCodeRefusedStream {
		c.stats.StreamsRefused++
	}
	c.removeStream(st, closedByPeer)
	c.h.StreamReset(id, code)
}

func (c *ClientConn) onSettings(f *Frame) {
	if f.IsAck() {
		if c.settingsAck {
			return
		}
		c.settingsAck = true
		// §6.5.3: these of our values bind the server only from now on.
		// Our INITIAL_WINDOW_SIZE needs no such care: the server reads
		// our SETTINGS before any HEADERS of ours, so every stream it
		// answers already has our window.
		c.parser.MaxFrameSize = c.cfg.MaxFrameSize
		c.dec.SetMaxTableSize(c.cfg.HeaderTableSize)
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
		case SettingEnablePush:
			if s.Val != 0 {
				// §6.5.2: a client MUST treat ENABLE_PUSH 1 from a
				// server as a connection error.
				c.fail(ErrCodeProtocol, "server sent SETTINGS_ENABLE_PUSH 1")
				return
			}
		case SettingMaxConcurrentStreams:
			c.peerMaxStreams = s.Val
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
			opened = opened || delta > 0
		case SettingMaxFrameSize:
			c.peerMaxFrame = s.Val
		case SettingMaxHeaderListSize:
			c.peerMaxHeaderList = s.Val
		}
		// Unknown settings are ignored (§6.5.2).
	}
	c.appendControl(AppendSettingsAck(c.out))
	if opened && c.err == nil {
		c.notifyWritable(0)
	}
}

func (c *ClientConn) onPing(f *Frame) {
	data, _ := f.Ping()
	if f.IsAck() {
		if c.pingSent != 0 && data == c.pingData {
			c.stats.PingsAcked++
			c.stats.RTT = time.Duration(c.clock - c.pingSent)
			c.pingSent = 0
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

// onGoAway handles the server's GOAWAY (§6.8): streams above last were
// not and will not be processed, so they are refused (retryable, §8.7);
// the others finish. No stream is opened any more.
func (c *ClientConn) onGoAway(last uint32, code ErrCode) {
	c.stats.GoAwayReceived++
	c.stats.PeerGoAwayCode = code
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
			c.stats.StreamsRefused++
			c.removeStream(st, closedByUs)
			c.h.StreamReset(id, ErrCodeRefusedStream)
		}
	}
	c.scratchIDs = ids[:0]
	c.checkDone()
}

func (c *ClientConn) onWindowUpdate(id uint32, inc uint32) {
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
		return // §5.1: may still arrive after the stream closed
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
func (c *ClientConn) notifyWritable(id uint32) {
	ids := c.takeScratch()
	for _, st := range c.streams {
		if st.wantWrite && (id == 0 || st.id == id) && c.sendable(st) > 0 {
			st.wantWrite = false
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

func (c *ClientConn) takeScratch() []uint32 {
	ids := c.scratchIDs[:0]
	c.scratchIDs = nil
	return ids
}

// --- errors -----------------------------------------------------------

// streamError resets a stream because of the server's frames (§5.4.2),
// charging the reset budget.
func (c *ClientConn) streamError(id uint32, code ErrCode) {
	if int(code) < len(c.stats.StreamErrors) {
		c.stats.StreamErrors[code]++
	}
	c.stats.ResetsSent++
	c.appendControl(AppendRSTStream(c.out, id, code))
	if st := c.find(id); st != nil {
		c.removeStream(st, closedByUs)
		c.h.StreamReset(id, code)
	} else if c.closedHow(id) == 0 {
		c.remember(id, closedByUs)
	}
	if c.err == nil && !c.resets.take(c.cfg.ResetBudget, c.clock) {
		c.flood(&c.stats.Floods.MadeYouReset, "too many streams reset for errors")
	}
}

func (c *ClientConn) flood(counter *uint64, reason string) {
	*counter++
	c.fail(ErrCodeEnhanceYourCalm, reason)
}

// fail raises a connection error (§5.4.1): GOAWAY (last stream id 0: the
// server opened no stream we processed), every stream reported reset with
// code, nothing more accepted.
func (c *ClientConn) fail(code ErrCode, reason string) error {
	if c.err != nil {
		return c.err
	}
	if int(code) < len(c.stats.ConnErrors) {
		c.stats.ConnErrors[code]++
	}
	c.appendGoAway(code, reason)
	return c.abort(ConnectionError{Code: code, Reason: reason}, code)
}

// abort ends the connection with err, reporting every stream reset with
// code.
func (c *ClientConn) abort(err error, code ErrCode) error {
	if c.err != nil {
		return c.err
	}
	c.err = err
	c.finished = true
	c.blockID = 0
	ids := c.takeScratch()
	for _, st := range c.streams {
		ids = append(ids, st.id)
		*st = clientStream{}
	}
	c.streams = c.streams[:0]
	for _, id := range ids {
		c.h.StreamReset(id, code)
	}
	c.scratchIDs = ids[:0]
	return c.err
}

func (c *ClientConn) appendGoAway(code ErrCode, reason string) {
	c.stats.GoAwaySent++
	c.stats.LastGoAwayCode = code
	c.out = AppendGoAway(c.out, 0, code, nil)
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
// the server, and bounds how many such frames wait in Output.
func (c *ClientConn) appendControl(out []byte) {
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
		c.flood(&c.stats.Floods.ControlQueue, "server does not read its control frames")
	}
}

// --- receive flow control ---------------------------------------------

// giveBackConn returns n octets to the connection window, announcing
// them once half the window is due (§6.9): one WINDOW_UPDATE per half
// window rather than one per DATA frame.
func (c *ClientConn) giveBackConn(n int64) {
	c.connUnacked += n
	if c.connUnacked >= int64(c.cfg.ConnWindowSize)/2 && c.err == nil {
		c.out = AppendWindowUpdate(c.out, 0, uint32(c.connUnacked))
		c.recvConnWindow += c.connUnacked
		c.connUnacked = 0
	}
}

func (c *ClientConn) giveBackStream(st *clientStream, n int64) {
	st.unacked += n
	if st.remoteEnded || c.err != nil {
		return // the server sends nothing more on it
	}
	if st.unacked >= max(int64(c.cfg.InitialWindowSize)/2, 1) {
		c.out = AppendWindowUpdate(c.out, st.id, uint32(st.unacked))
		st.recvWindow += st.unacked
		st.unacked = 0
	}
}

// Consumed reports that the handler forwarded n octets of id's response
// body: they are given back to the server's windows, with a
// WINDOW_UPDATE once half a window is due. Octets of a stream that is
// gone were given back when it closed; Consumed on it does nothing.
func (c *ClientConn) Consumed(id uint32, n int) {
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

// CanOpen reports whether OpenStream would succeed now: the connection is
// running (no error, no GOAWAY either way), the open streams are fewer
// than both our MaxConcurrentStreams and the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2), and stream ids are left
// (§5.1.1: they end at 2^31-1; a new connection is needed then).
func (c *ClientConn) CanOpen() bool {
	return !c.finished && !c.peerGoAway && !c.shutdown &&
		c.nextID <= streamIDMask &&
		uint32(len(c.streams)) < min(c.cfg.MaxConcurrentStreams, c.peerMaxStreams)
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
	var st *clientStream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		st = new(clientStream)
	}
	*st = clientStream{
		id:            id,
		localEnded:    endStream,
		noBody:        noBody,
		sendWindow:    c.peerInitWindow,
		recvWindow:    int64(c.cfg.InitialWindowSize),
		contentLength: -1,
	}
	c.streams = append(c.streams, st)
	c.stats.StreamsOpened++
	c.hbuf = c.enc.Append(c.hbuf[:0], fields...)
	c.appendHeaderBlock(id, c.hbuf, endStream)
	if cap(c.hbuf) > 16<<10 {
		c.hbuf = nil
	}
	return id, nil
}

// appendHeaderBlock writes an encoded field block as HEADERS and as many
// CONTINUATION frames as the server's MAX_FRAME_SIZE requires (§4.3).
func (c *ClientConn) appendHeaderBlock(id uint32, block []byte, endStream bool) {
	max := int(c.peerMaxFrame)
	first := min(len(block), max)
	c.out = AppendHeaders(c.out, id, endStream, first == len(block), block[:first])
	for rest := block[first:]; len(rest) > 0; {
		k := min(len(rest), max)
		c.out = AppendContinuation(c.out, id, k == len(rest), rest[:k])
		rest = rest[k:]
	}
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
	c.hbuf = c.enc.Append(c.hbuf[:0], fields...)
	c.appendHeaderBlock(id, c.hbuf, true)
	st.localEnded, st.wantWrite = true, false
	c.closeIfDone(st)
	return nil
}

func (c *ClientConn) sendable(st *clientStream) int64 {
	w := min(st.sendWindow, c.sendConnWindow, int64(c.cfg.MaxOutput-(len(c.out)-c.outHead)))
	return max(w, 0)
}

// SendWindow returns how many octets WriteData would accept for id now.
// When it returns 0 for an open stream, StreamWritable follows when that
// changes.
func (c *ClientConn) SendWindow(id uint32) int {
	st := c.find(id)
	if st == nil || st.localEnded || c.finished {
		return 0
	}
	w := c.sendable(st)
	if w == 0 {
		c.blocked(st)
	}
	return int(w)
}

func (c *ClientConn) blocked(st *clientStream) {
	st.wantWrite = true
	if st.sendWindow > 0 && c.sendConnWindow > 0 {
		c.outBlocked = true // only MaxOutput stops it
	}
}

// WriteData queues request body octets for id and returns how many it
// took: limited by the stream's and the connection's send windows
// (§6.9), and by MaxOutput. Frames are cut at the server's
// SETTINGS_MAX_FRAME_SIZE. endStream is applied only if all of p was
// taken; an empty p with endStream sends an empty DATA frame with
// END_STREAM. When it takes less than p, StreamWritable follows once more
// can be sent.
func (c *ClientConn) WriteData(id uint32, p []byte, endStream bool) int {
	st := c.find(id)
	if st == nil || st.localEnded || c.finished {
		return 0
	}
	n := int(min(int64(len(p)), c.sendable(st)))
	if n < len(p) {
		defer c.blocked(st) // after the windows are charged
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
	// The server answers data with WINDOW_UPDATEs: let it.
	c.wupdates.credit(c.cfg.WindowUpdateBudget, c.clock, float64(frames)+float64(n)/2048)
	if end {
		st.localEnded, st.wantWrite = true, false
		c.closeIfDone(st)
	}
	return n
}

// Reset ends stream id from our side with RST_STREAM(code) (§6.4), e.g.
// CANCEL because the client of the proxy went away. The handler is not
// called back; frames the server had in flight are ignored.
func (c *ClientConn) Reset(id uint32, code ErrCode) {
	if c.finished {
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
func (c *ClientConn) Output() []byte { return c.out[c.outHead:] }

// Consume drops the first n octets of Output, which were written. If
// WriteData was held back by MaxOutput and at least half of it is free
// again, the waiting streams get StreamWritable from inside Consume.
func (c *ClientConn) Consume(n int) {
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
		k := copy(c.out, c.out[c.outHead:])
		c.out, c.outHead = c.out[:k], 0
	}
	if c.outBlocked && len(c.out)-c.outHead <= c.cfg.MaxOutput/2 && !c.finished {
		c.outBlocked = false
		c.notifyWritable(0)
	}
}

// ShrinkBuffers releases the output buffer if it is empty, and the
// scratch buffers: call it when a pooled connection goes idle.
func (c *ClientConn) ShrinkBuffers() {
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
	c.stats.PingsSent++
	c.out = AppendPing(c.out, false, c.pingData)
}

// Shutdown closes the connection gracefully (§6.8): GOAWAY(NO_ERROR)
// with last stream id 0 (the server opened none), no new stream, and the
// open streams finish. Done reports true once none is left.
func (c *ClientConn) Shutdown(now time.Time) {
	c.setNow(now)
	if c.finished || c.shutdown {
		return
	}
	c.shutdown = true
	c.appendGoAway(ErrCodeNo, "")
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

func (c *ClientConn) checkDone() {
	if c.finished || len(c.streams) != 0 || c.blockID != 0 {
		return
	}
	if c.peerGoAway || c.shutdown {
		c.finished = true
	}
}

// Done reports that the connection has nothing more to do: it failed,
// or it drained (after Shutdown or the server's GOAWAY) with no stream
// left. The caller flushes Output and closes the socket.
func (c *ClientConn) Done() bool { return c.finished }

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
	var d int64 = -1
	if !c.settingsAck && c.settingsArm {
		d = c.settingsSent + int64(c.cfg.SettingsTimeout)
	}
	if c.pingSent != 0 {
		if t := c.pingSent + int64(c.cfg.PingTimeout); d < 0 || t < d {
			d = t
		}
	}
	if d < 0 {
		return time.Time{}
	}
	return c.epoch.Add(time.Duration(d))
}

// Timeout handles the deadlines due at now: an unacknowledged SETTINGS
// ends the connection with GOAWAY(SETTINGS_TIMEOUT) (§6.5.3), an
// unanswered PING with ErrPingTimeout (streams get StreamReset(CANCEL)).
func (c *ClientConn) Timeout(now time.Time) {
	c.setNow(now)
	if c.finished {
		return
	}
	if !c.settingsAck && c.clock >= c.settingsSent+int64(c.cfg.SettingsTimeout) {
		c.fail(ErrCodeSettingsTimeout, "SETTINGS not acknowledged")
		return
	}
	if c.pingSent != 0 && c.clock >= c.pingSent+int64(c.cfg.PingTimeout) {
		c.abort(ErrPingTimeout, ErrCodeCancel)
	}
}

// Streams returns the number of open and half-closed streams.
func (c *ClientConn) Streams() int { return len(c.streams) }

// Stats returns the connection's counters.
func (c *ClientConn) Stats() ClientStats { return c.stats }
