package h2

import (
	"errors"
	"time"
)

// how a stream left the stream table, for frames that arrive after (RFC
// 9113 §5.1 "closed").
const (
	closedByUs   = 1 // we sent RST_STREAM: ignore what is in flight
	closedByPeer = 2 // the peer sent RST_STREAM: frames are STREAM_CLOSED stream errors
	closedEnded  = 3 // the peer had sent END_STREAM: frames are STREAM_CLOSED connection errors
)

type closedStream struct {
	id  uint32
	how uint8
}

// our GOAWAY state (§6.8).
const (
	drainNone    = 0
	drainPinging = 1 // ServerConn: first GOAWAY and PING sent, waiting for the ack
	drainFinal   = 2 // our final GOAWAY is out: no new stream
)

// stream is the state of one open or half-closed stream (RFC 9113 §5.1),
// on either side. Idle streams have none; closed ones leave a
// closedStream record.
type stream struct {
	id          uint32
	localEnded  bool // we sent END_STREAM: half-closed (local)
	remoteEnded bool // the peer sent END_STREAM: half-closed (remote)
	finalHead   bool // the final (non-1xx) response head: sent by ServerConn, received by ClientConn
	noBody      bool // ClientConn: a HEAD request, the response has no content (§8.1.1)
	wantWrite   bool // the handler is waiting for StreamWritable
	interim     int  // ClientConn: 1xx heads received
	stalled     int64

	sendWindow int64 // what we may still send (the peer's window)
	recvWindow int64 // what the peer may still send
	unacked    int64 // octets consumed or dropped and not yet given back with WINDOW_UPDATE
	delivered  int64 // octets handed to the handler and not yet Consumed

	contentLength int64 // -1: none
	received      int64 // DATA octets (padding excluded) received
}

// streamEvents are the callbacks Handler and ClientHandler share.
type streamEvents interface {
	StreamReset(id uint32, code ErrCode)
	StreamWritable(id uint32)
}

// role is what ServerConn and ClientConn do differently with the frames
// the core parses.
type role interface {
	onFrame(f Frame)
	onFrameStreamError(f Frame, code ErrCode)
	onFieldBlock(id uint32, block []byte, endStream, selfDep bool)
}

// connCore is what ServerConn and ClientConn share: the output buffer and
// the accounting of the control frames in it, the clock, the flood
// budgets, the stream table, flow control, and how a connection ends.
type connCore struct {
	lim  limits
	ev   streamEvents
	role role

	parser Parser
	dec    *Decoder
	enc    *Encoder

	out     []byte
	outHead int
	outBase uint64 // total octets consumed from out since the start

	// ctrlEnds holds, for each frame we queued in answer to the peer
	// (acks, resets), the absolute output offset of its end; those whose
	// end has been consumed are dropped from ctrlHead.
	ctrlEnds []uint64
	ctrlHead int

	streams    []*stream
	free       []*stream
	closed     [32]closedStream
	closedNext int
	scratchIDs []uint32

	fields []HeaderField
	hbuf   []byte // encoded head we send

	// Field block reassembly (§4.3, §6.10).
	block     []byte
	blockCont int // CONTINUATION frames so far

	settingsSent int64

	sendConnWindow int64
	peerInitWindow int64
	recvConnWindow int64
	connUnacked    int64

	err error

	epoch time.Time
	clock int64 // ns since epoch, monotonic

	resets, pings, settings, empties, wupdates bucket

	counts coreCounts

	// lastID is the highest stream id in use: the client's (§5.1.1) on a
	// ServerConn, ours on a ClientConn. Odd ids above it are idle.
	lastID            uint32
	blockID           uint32 // 0: no field block pending
	peerMaxFrame      uint32
	peerMaxStreams    uint32 // ClientConn acts on it
	peerMaxHeaderList uint32 // 0: unlimited; ClientConn acts on it

	server      bool
	blockEnd    bool // END_STREAM of the HEADERS that started the block
	blockErr    bool // that HEADERS carried a self-dependency: reset after decoding
	gotSettings bool // the peer's first SETTINGS arrived
	settingsAck bool // the peer acknowledged ours
	settingsArm bool // settingsSent is set
	outBlocked  bool // WriteData was limited by MaxOutput
	peerGoAway  bool
	drain       uint8
	finished    bool
	epochSet    bool
}

// coreCounts are the counters ConnStats and ClientStats share (see
// there); Stats copies them out.
type coreCounts struct {
	StreamsOpened   uint64
	StreamsRefused  uint64
	ResetsReceived  uint64
	ResetsSent      uint64
	HeadersTooLarge uint64
	GoAwaySent      uint64
	LastGoAwayCode  ErrCode
	// rare holds the error and flood counters, which stay zero on
	// almost every connection: 288 bytes allocated on the first error
	// rather than carried by each connection.
	rare *rareCounts
}

type rareCounts struct {
	ConnErrors   [ErrCodeHTTP11Required + 1]uint64
	StreamErrors [ErrCodeHTTP11Required + 1]uint64
	Floods       FloodStats
}

// errs is where errors and floods are counted, allocated on the first.
func (k *coreCounts) errs() *rareCounts {
	if k.rare == nil {
		k.rare = new(rareCounts)
	}
	return k.rare
}

// copyRare copies the rare counters out (zeros when none was counted).
func (k *coreCounts) copyRare() (r rareCounts) {
	if k.rare != nil {
		r = *k.rare
	}
	return r
}

func (c *connCore) init(lim limits, ev streamEvents, r role, server bool) {
	c.lim, c.ev, c.role, c.server = lim, ev, r, server
	c.dec = NewDecoder(DefaultHeaderTableSize, lim.MaxHeaderListSize)
	c.enc = NewEncoder()
	c.sendConnWindow = DefaultInitialWindowSize
	c.peerInitWindow = DefaultInitialWindowSize
	c.peerMaxFrame = DefaultMaxFrameSize
	c.recvConnWindow = int64(lim.ConnWindowSize)
	c.resets.fill(lim.ResetBudget)
	c.pings.fill(lim.PingBudget)
	c.settings.fill(lim.SettingsBudget)
	c.empties.fill(lim.EmptyDataBudget)
	c.wupdates.fill(lim.WindowUpdateBudget)
	c.out = make([]byte, 0, 128)
}

// appendPreface queues our SETTINGS, first the setting of the role and
// MAX_HEADER_LIST_SIZE, then those that differ from their defaults, and
// the WINDOW_UPDATE that raises the connection window to ConnWindowSize.
func (c *connCore) appendPreface(first SettingID, val uint32) {
	l := &c.lim
	n := 2
	if l.InitialWindowSize != DefaultInitialWindowSize {
		n++
	}
	if l.MaxFrameSize != DefaultMaxFrameSize {
		n++
	}
	if l.HeaderTableSize != DefaultHeaderTableSize {
		n++
	}
	c.out = AppendSettingsHeader(c.out, n)
	c.out = AppendSetting(c.out, first, val)
	c.out = AppendSetting(c.out, SettingMaxHeaderListSize, l.MaxHeaderListSize)
	if l.InitialWindowSize != DefaultInitialWindowSize {
		c.out = AppendSetting(c.out, SettingInitialWindowSize, l.InitialWindowSize)
	}
	if l.MaxFrameSize != DefaultMaxFrameSize {
		c.out = AppendSetting(c.out, SettingMaxFrameSize, l.MaxFrameSize)
	}
	if l.HeaderTableSize != DefaultHeaderTableSize {
		c.out = AppendSetting(c.out, SettingHeaderTableSize, l.HeaderTableSize)
	}
	if l.ConnWindowSize > DefaultInitialWindowSize {
		c.out = AppendWindowUpdate(c.out, 0, l.ConnWindowSize-DefaultInitialWindowSize)
	}
}

// MaxFrameLen is the largest frame Feed may need whole before it can
// consume it: the read buffer must be able to hold this many octets.
func (c *connCore) MaxFrameLen() int { return FrameHeaderLen + int(c.lim.MaxFrameSize) }

func (c *connCore) setNow(now time.Time) {
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

// peerName names the other side in the reasons of our connection errors.
func (c *connCore) peerName(server, client string) string {
	if c.server {
		return server
	}
	return client
}

// --- reading ----------------------------------------------------------

// feed parses the frames of b from offset n on and hands them to the
// role, until b holds no complete frame or the connection ends.
func (c *connCore) feed(b []byte, n int) (int, error) {
	if !c.settingsAck && c.settingsArm && len(b) > n {
		// A peer that keeps sending is alive: its ACK may be queued
		// behind what it sent before (a large upload on a slow link; TCP
		// delivers in order, and a frame may take long to complete). The
		// SETTINGS timeout counts its silence.
		c.settingsSent = max(c.settingsSent, c.clock)
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
			var ce ConnectionError
			if errors.As(perr, &ce) {
				return n, c.fail(ce.Code, ce.Reason)
			}
		}
		n += m
		if !c.gotSettings {
			// §3.4: the connection preface is (ends with) a SETTINGS frame.
			if f.Type != FrameSettings || f.IsAck() {
				return n, c.fail(ErrCodeProtocol, c.peerName("client preface not followed by SETTINGS", "server preface is not a SETTINGS frame"))
			}
			c.gotSettings = true
		}
		if perr != nil {
			code, _, _, _ := Classify(perr)
			c.role.onFrameStreamError(f, code)
		} else {
			c.role.onFrame(f)
		}
		if c.err != nil {
			return n, c.err
		}
	}
	return n, nil
}

// onCommonFrame handles the frames both sides treat alike.
func (c *connCore) onCommonFrame(f *Frame) {
	switch f.Type {
	case FrameHeaders:
		h, _ := f.Headers()
		c.onHeaders(f.StreamID, h.Fragment, h.EndStream, h.EndHeaders, false)
	case FramePriority:
		// §5.3.2: RFC 7540 priorities are deprecated; a PRIORITY frame
		// may come in any stream state and changes nothing.
	case FramePushPromise:
		// §8.4: only a server may push, and a ClientConn disables it.
		c.fail(ErrCodeProtocol, c.peerName("PUSH_PROMISE from a client", "PUSH_PROMISE with push disabled"))
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

// isIdle reports whether id names a stream not opened yet (§5.1): above
// lastID, or even (neither side pushes).
func (c *connCore) isIdle(id uint32) bool {
	return id > c.lastID || id&1 == 0
}

// --- stream table -----------------------------------------------------

func (c *connCore) find(id uint32) *stream {
	for _, s := range c.streams {
		if s.id == id {
			return s
		}
	}
	return nil
}

// newStream adds a stream to the table, reusing a freed one.
func (c *connCore) newStream(s stream) *stream {
	var st *stream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		st = new(stream)
	}
	*st = s
	c.streams = append(c.streams, st)
	return st
}

func (c *connCore) closedHow(id uint32) uint8 {
	for i := range c.closed {
		if c.closed[i].id == id {
			return c.closed[i].how
		}
	}
	return 0
}

func (c *connCore) remember(id uint32, how uint8) {
	c.closed[c.closedNext] = closedStream{id, how}
	c.closedNext = (c.closedNext + 1) % len(c.closed)
}

// removeStream takes st out of the table, returning to the connection
// window the octets the handler will no longer Consume.
func (c *connCore) removeStream(st *stream, how uint8) {
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
func (c *connCore) closeIfDone(st *stream) {
	if st.localEnded && st.remoteEnded {
		c.removeStream(st, closedEnded)
	}
}

// onClosed handles a frame on id, a stream no longer in the table (§5.1
// closed): after the peer's RST_STREAM it is a STREAM_CLOSED stream
// error, after its END_STREAM a connection error with reason afterEnd.
// It returns how the stream closed; the caller decides for the others
// (closed by us, or too long ago to know).
func (c *connCore) onClosed(id uint32, afterEnd string) (how uint8) {
	how = c.closedHow(id)
	switch how {
	case closedByPeer:
		c.streamError(id, ErrCodeStreamClosed)
	case closedEnded:
		c.fail(ErrCodeStreamClosed, afterEnd)
	}
	return how
}

// afterRemoteEnd closes id if our side was over too; a stream whose
// peer ended first keeps our side (§8.1).
func (c *connCore) afterRemoteEnd(id uint32) {
	if st := c.find(id); st != nil {
		c.closeIfDone(st)
	}
}

// takeScratch lends the scratch id slice; a nested caller (a handler
// callback calling back in) gets a fresh one rather than the same array.
func (c *connCore) takeScratch() []uint32 {
	ids := c.scratchIDs[:0]
	c.scratchIDs = nil
	return ids
}

// Streams returns the number of open and half-closed streams.
func (c *connCore) Streams() int { return len(c.streams) }

// --- frames -----------------------------------------------------------

// onDataConn does for a DATA frame on id what does not depend on its
// stream (§6.9: every DATA frame counts against the connection window,
// padding included). It reports false when the connection failed.
func (c *connCore) onDataConn(id uint32, length int64, empty, endStream bool) bool {
	if c.isIdle(id) {
		c.fail(ErrCodeProtocol, "DATA on an idle stream")
		return false
	}
	if length > c.recvConnWindow {
		c.fail(ErrCodeFlowControl, "DATA beyond the connection window")
		return false
	}
	c.recvConnWindow -= length
	if empty && !endStream && !c.empties.take(c.lim.EmptyDataBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.EmptyData, "empty DATA frames")
		return false
	}
	return true
}

// onDataStream charges a DATA frame to an open stream that may receive it
// and checks content-length (§8.1.1). It reports false when the stream
// was reset; otherwise the data is the handler's to Consume.
func (c *connCore) onDataStream(st *stream, length int64, n int, endStream bool) bool {
	if length > st.recvWindow {
		c.giveBackConn(length)
		c.streamError(st.id, ErrCodeFlowControl)
		return false
	}
	st.recvWindow -= length
	if pad := length - int64(n); pad > 0 {
		// The handler never sees padding: give it back at once.
		c.giveBackConn(pad)
		c.giveBackStream(st, pad)
	}
	st.received += int64(n)
	if st.contentLength >= 0 && (st.received > st.contentLength || endStream && st.received != st.contentLength) {
		// §8.1.1: content-length must equal the sum of DATA lengths.
		c.giveBackConn(int64(n))
		c.streamError(st.id, ErrCodeProtocol)
		return false
	}
	st.delivered += int64(n)
	return true
}

func (c *connCore) onHeaders(id uint32, frag []byte, endStream, endHeaders, selfDep bool) {
	if id&1 == 0 {
		// §5.1.1: client streams are odd, and with push disabled the
		// server opens none (§8.4).
		c.fail(ErrCodeProtocol, c.peerName("HEADERS on an even stream", "HEADERS on a server-initiated stream"))
		return
	}
	if endHeaders {
		c.role.onFieldBlock(id, frag, endStream, selfDep)
		return
	}
	if uint32(len(frag)) > c.lim.MaxHeaderBlockSize {
		c.flood(&c.counts.errs().Floods.Continuation, "field block too large")
		return
	}
	c.blockID, c.blockEnd, c.blockErr, c.blockCont = id, endStream, selfDep, 0
	c.block = append(c.block[:0], frag...)
}

func (c *connCore) onContinuation(id uint32, frag []byte, endHeaders bool) {
	if c.blockID == 0 {
		// §6.10: CONTINUATION only follows HEADERS without END_HEADERS.
		c.fail(ErrCodeProtocol, "CONTINUATION without a field block")
		return
	}
	c.blockCont++
	if c.blockCont > c.lim.MaxContinuations || uint64(len(c.block))+uint64(len(frag)) > uint64(c.lim.MaxHeaderBlockSize) {
		// CVE-2024-27316: a block that never ends, or ends huge.
		c.flood(&c.counts.errs().Floods.Continuation, "CONTINUATION flood")
		return
	}
	c.block = append(c.block, frag...)
	if !endHeaders {
		return
	}
	c.blockID = 0
	c.role.onFieldBlock(id, c.block, c.blockEnd, c.blockErr)
	if cap(c.block) > 16<<10 {
		// Large blocks are rare: do not keep their buffer.
		c.block = nil
	}
}

// decodeBlock decodes a complete field block: first, whatever happens to
// its stream, since every block changes the HPACK state (§4.3). It
// reports false when decoding failed and the connection with it.
func (c *connCore) decodeBlock(block []byte) (fields []HeaderField, tooLarge, ok bool) {
	fields, derr := c.dec.Decode(c.fields[:0], block)
	if derr != nil && derr != ErrHeaderListTooLarge {
		c.fail(ErrCodeCompression, "HPACK decoding failed")
		return nil, false, false
	}
	c.fields = fields[:0]
	return fields, derr == ErrHeaderListTooLarge, true
}

// applySettings handles a SETTINGS frame that is not an ack (§6.5.3: values
// are applied in the order they appear) and acknowledges it.
func (c *connCore) applySettings(f *Frame) {
	if !c.settings.take(c.lim.SettingsBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.Settings, "SETTINGS flood")
		return
	}
	opened := false
	for i, n := 0, f.NumSettings(); i < n; i++ {
		s := f.SettingAt(i)
		switch s.ID {
		case SettingHeaderTableSize:
			c.enc.SetMaxTableSizeLimit(s.Val)
		case SettingEnablePush:
			if s.Val != 0 && !c.server {
				// §6.5.2: a client MUST treat ENABLE_PUSH 1 from a
				// server as a connection error. We never push.
				c.fail(ErrCodeProtocol, "server sent SETTINGS_ENABLE_PUSH 1")
				return
			}
		case SettingMaxConcurrentStreams:
			// Limits the streams we open: only a ClientConn opens any.
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
			// Advisory (§6.5.2); a ClientConn checks its requests.
			c.peerMaxHeaderList = s.Val
		}
		// Unknown settings are ignored (§6.5.2).
	}
	c.appendControl(AppendSettingsAck(c.out))
	if opened && c.err == nil {
		c.notifyWritable(0)
	}
}

// onSettingsAck applies what of our SETTINGS binds the peer only once it
// acknowledged them (§6.5.3); false for an ack we did not ask for.
func (c *connCore) onSettingsAck() bool {
	if c.settingsAck {
		return false // nothing to apply
	}
	c.settingsAck = true
	c.parser.MaxFrameSize = c.lim.MaxFrameSize
	c.dec.SetMaxTableSize(c.lim.HeaderTableSize)
	return true
}

// answerPing answers a PING (§6.7) with the same payload.
func (c *connCore) answerPing(data [8]byte) {
	if !c.pings.take(c.lim.PingBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.Ping, "PING flood")
		return
	}
	c.appendControl(AppendPing(c.out, true, data))
}

func (c *connCore) onWindowUpdate(id uint32, inc uint32) {
	if !c.wupdates.take(c.lim.WindowUpdateBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.WindowUpdate, "WINDOW_UPDATE flood")
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
		// §5.1: after our END_STREAM or RST_STREAM the peer may still
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
func (c *connCore) notifyWritable(id uint32) {
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
			c.ev.StreamWritable(sid)
		}
	}
	c.scratchIDs = ids[:0]
}

// --- errors -----------------------------------------------------------

// streamError resets a stream because of the peer's frames (§5.4.2),
// charging the reset budget (CVE-2025-8671).
func (c *connCore) streamError(id uint32, code ErrCode) {
	if k := c.counts.errs(); int(code) < len(k.StreamErrors) {
		k.StreamErrors[code]++
	}
	c.sendReset(id, code, true)
	if c.err == nil && !c.resets.take(c.lim.ResetBudget, c.clock) {
		c.flood(&c.counts.errs().Floods.MadeYouReset, "too many streams reset for errors")
	}
}

// sendReset queues RST_STREAM and, if the stream is open, removes it and
// tells the handler when notify is set.
func (c *connCore) sendReset(id uint32, code ErrCode, notify bool) {
	c.counts.ResetsSent++
	c.appendControl(AppendRSTStream(c.out, id, code))
	st := c.find(id)
	if st == nil {
		if id <= c.lastID && c.closedHow(id) == 0 {
			c.remember(id, closedByUs)
		}
		return
	}
	c.removeStream(st, closedByUs)
	if notify {
		c.ev.StreamReset(id, code)
	}
}

func (c *connCore) flood(counter *uint64, reason string) {
	*counter++
	c.fail(ErrCodeEnhanceYourCalm, reason)
}

// fail raises a connection error (§5.4.1): GOAWAY with the last stream
// we processed (a ClientConn processed none of the server's: 0), every
// stream reported reset, and nothing more accepted.
func (c *connCore) fail(code ErrCode, reason string) error {
	if c.err != nil {
		return c.err
	}
	if k := c.counts.errs(); int(code) < len(k.ConnErrors) {
		k.ConnErrors[code]++
	}
	var last uint32
	if c.server {
		last = c.lastID
	}
	c.appendGoAway(last, code, reason)
	return c.abort(ConnectionError{Code: code, Reason: reason}, code)
}

// abort ends the connection with err, reporting every stream reset with
// code.
func (c *connCore) abort(err error, code ErrCode) error {
	if c.err != nil {
		return c.err
	}
	c.err = err
	c.finished = true
	c.blockID = 0
	ids := c.takeScratch()
	for _, st := range c.streams {
		ids = append(ids, st.id)
		*st = stream{}
	}
	c.streams = c.streams[:0]
	for _, id := range ids {
		c.ev.StreamReset(id, code)
	}
	c.scratchIDs = ids[:0]
	return c.err
}

func (c *connCore) appendGoAway(last uint32, code ErrCode, reason string) {
	c.counts.GoAwaySent++
	c.counts.LastGoAwayCode = code
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
// the peer, and bounds how many such frames wait in Output.
func (c *connCore) appendControl(out []byte) {
	c.out = out
	if c.err != nil {
		return
	}
	if c.ctrlHead > 0 && 2*c.ctrlHead >= len(c.ctrlEnds) {
		k := copy(c.ctrlEnds, c.ctrlEnds[c.ctrlHead:])
		c.ctrlEnds, c.ctrlHead = c.ctrlEnds[:k], 0
	}
	c.ctrlEnds = append(c.ctrlEnds, c.outBase+uint64(len(c.out)-c.outHead))
	if len(c.ctrlEnds)-c.ctrlHead > c.lim.MaxQueuedControlFrames {
		c.flood(&c.counts.errs().Floods.ControlQueue, c.peerName("client does not read its control frames", "server does not read its control frames"))
	}
}

// --- receive flow control ---------------------------------------------

// giveBackConn returns n octets to the connection window, announcing
// them once half the window is due (§6.9): one WINDOW_UPDATE per half
// window rather than one per DATA frame.
func (c *connCore) giveBackConn(n int64) {
	c.connUnacked += n
	if c.connUnacked >= int64(c.lim.ConnWindowSize)/2 && c.err == nil {
		c.out = AppendWindowUpdate(c.out, 0, uint32(c.connUnacked))
		c.recvConnWindow += c.connUnacked
		c.connUnacked = 0
	}
}

func (c *connCore) giveBackStream(st *stream, n int64) {
	st.unacked += n
	if st.remoteEnded || c.err != nil {
		return // the peer sends nothing more on it
	}
	if st.unacked >= max(int64(c.lim.InitialWindowSize)/2, 1) {
		c.out = AppendWindowUpdate(c.out, st.id, uint32(st.unacked))
		st.recvWindow += st.unacked
		st.unacked = 0
	}
}

// Consumed reports that the handler forwarded n octets of the body it got
// on id: they are given back to the peer's windows, with a WINDOW_UPDATE
// once half a window is due. Octets of a stream that is gone were given
// back when it closed; Consumed on it does nothing.
func (c *connCore) Consumed(id uint32, n int) {
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

// writeHeaderBlock encodes fields and writes them as HEADERS and as many
// CONTINUATION frames as the peer's MAX_FRAME_SIZE requires (§4.3).
func (c *connCore) writeHeaderBlock(id uint32, fields []HeaderField, endStream bool) {
	c.hbuf = c.enc.Append(c.hbuf[:0], fields...)
	block := c.hbuf
	max := int(c.peerMaxFrame)
	first := min(len(block), max)
	c.out = AppendHeaders(c.out, id, endStream, first == len(block), block[:first])
	for rest := block[first:]; len(rest) > 0; {
		k := min(len(rest), max)
		c.out = AppendContinuation(c.out, id, k == len(rest), rest[:k])
		rest = rest[k:]
	}
	if cap(c.hbuf) > 16<<10 {
		c.hbuf = nil
	}
}

// endLocal records that we sent END_STREAM on st.
func (c *connCore) endLocal(st *stream) {
	st.localEnded = true
	st.wantWrite, st.stalled = false, 0
	c.closeIfDone(st)
}

// sendable is what WriteData could take for st now.
func (c *connCore) sendable(st *stream) int64 {
	w := min(st.sendWindow, c.sendConnWindow, int64(c.lim.MaxOutput-(len(c.out)-c.outHead)))
	return max(w, 0)
}

// writable returns stream id if we may still send on it.
func (c *connCore) writable(id uint32) *stream {
	st := c.find(id)
	if st == nil || st.localEnded || c.finished {
		return nil
	}
	return st
}

// SendWindow returns how many octets WriteData would accept for id now.
// When it returns 0 for an open stream, StreamWritable follows when that
// changes.
func (c *connCore) SendWindow(id uint32) int {
	st := c.writable(id)
	if st == nil {
		return 0
	}
	w := c.sendable(st)
	if w == 0 {
		c.blocked(st)
	}
	return int(w)
}

// blocked records that st waits: for StreamWritable, and, when the peer's
// windows are what stops it, since when (ServerConn resets it after
// StallTimeout).
func (c *connCore) blocked(st *stream) {
	st.wantWrite = true
	if st.sendWindow <= 0 || c.sendConnWindow <= 0 {
		if st.stalled == 0 {
			st.stalled = c.clock
		}
	} else {
		c.outBlocked = true // only MaxOutput stops it
	}
}

// writeData is WriteData on a stream that may send.
func (c *connCore) writeData(st *stream, p []byte, endStream bool) int {
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
		c.out = AppendData(c.out, st.id, end && off+k == n, p[off:off+k])
		off += k
		frames++
	}
	st.sendWindow -= int64(n)
	c.sendConnWindow -= int64(n)
	// The peer answers data with WINDOW_UPDATEs, for the stream and
	// for the connection, as often as every 1 KiB it reads (Go's client
	// every 4 KiB of each, others more): let it, with room to spare, as
	// Envoy allows ten per DATA frame.
	c.wupdates.credit(c.lim.WindowUpdateBudget, c.clock, float64(2*frames)+float64(n)/1024)
	if end {
		c.endLocal(st)
	}
	return n
}

// reset is Reset: RST_STREAM(code) on an open stream, without telling the
// handler.
func (c *connCore) reset(id uint32, code ErrCode) {
	if c.finished {
		return
	}
	st := c.find(id)
	if st == nil {
		return
	}
	c.counts.ResetsSent++
	c.out = AppendRSTStream(c.out, id, code)
	c.removeStream(st, closedByUs)
}

// Output returns the octets to write to the socket. The slice is valid
// until the next call of any other method.
func (c *connCore) Output() []byte { return c.out[c.outHead:] }

// Consume drops the first n octets of Output, which were written. If
// WriteData was held back by MaxOutput and at least half of it is free
// again, the waiting streams get StreamWritable from inside Consume.
func (c *connCore) Consume(n int) {
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
	if c.outBlocked && len(c.out)-c.outHead <= c.lim.MaxOutput/2 && !c.finished {
		c.outBlocked = false
		c.notifyWritable(0)
	}
}

// ShrinkBuffers releases the output buffer if it is empty, and the
// scratch buffers: call it when the connection goes idle, to hold only
// kilobytes per idle connection.
func (c *connCore) ShrinkBuffers() {
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

// --- end ----------------------------------------------------------------

// checkDone ends a draining connection that has no stream left: after our
// final GOAWAY, or after the peer's GOAWAY (then a ServerConn sends its
// own, NO_ERROR, to tell the client it saw everything).
func (c *connCore) checkDone() {
	if c.finished || len(c.streams) != 0 || c.blockID != 0 {
		return
	}
	switch {
	case c.drain == drainFinal:
		c.finished = true
	case c.peerGoAway:
		if c.server {
			c.appendGoAway(c.lastID, ErrCodeNo, "")
		}
		c.finished = true
	}
}

// settingsExpired reports whether our SETTINGS went unacknowledged for
// SettingsTimeout, and if so ends the connection (§6.5.3).
func (c *connCore) settingsExpired() bool {
	if !c.settingsAck && c.clock >= c.settingsSent+int64(c.lim.SettingsTimeout) {
		c.fail(ErrCodeSettingsTimeout, "SETTINGS not acknowledged")
		return true
	}
	return false
}

// settingsDeadline is when our SETTINGS time out on the clock, -1 if
// they cannot (acknowledged, or not sent yet).
func (c *connCore) settingsDeadline() int64 {
	if !c.settingsAck && c.settingsArm {
		return c.settingsSent + int64(c.lim.SettingsTimeout)
	}
	return -1
}

// earlier folds the clock time t into the deadline d (-1: none yet).
func earlier(d, t int64) int64 {
	if d < 0 || t < d {
		return t
	}
	return d
}

// timeAt converts a deadline on the clock to a time (zero for -1).
func (c *connCore) timeAt(d int64) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return c.epoch.Add(time.Duration(d))
}

// Done reports that the connection has nothing more to do: it failed, or
// it drained (after Shutdown or the peer's GOAWAY) with no stream left.
// The caller flushes Output and closes the socket.
func (c *connCore) Done() bool { return c.finished }
