package h2

import (
	"encoding/binary"
	"strconv"
)

// ClientPreface is the connection preface a client sends before its first
// frame (RFC 9113 §3.4). A server reads these 24 octets, then a SETTINGS
// frame.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	// FrameHeaderLen is the size of every frame header (RFC 9113 §4.1).
	FrameHeaderLen = 9
	// DefaultMaxFrameSize is the initial SETTINGS_MAX_FRAME_SIZE, and the
	// smallest value a peer may advertise (RFC 9113 §6.5.2).
	DefaultMaxFrameSize = 1 << 14
	// MaxFrameSizeLimit is the largest frame payload the 24-bit Length
	// field can describe, and the largest SETTINGS_MAX_FRAME_SIZE.
	MaxFrameSizeLimit = 1<<24 - 1
	// MaxWindowSize is the largest flow-control window (RFC 9113 §6.9.1)
	// and the largest SETTINGS_INITIAL_WINDOW_SIZE.
	MaxWindowSize = 1<<31 - 1
	// DefaultHeaderTableSize is the initial SETTINGS_HEADER_TABLE_SIZE.
	DefaultHeaderTableSize = 4096
	// DefaultInitialWindowSize is the initial SETTINGS_INITIAL_WINDOW_SIZE.
	DefaultInitialWindowSize = 65535

	streamIDMask = 1<<31 - 1
)

// FrameType is the 8-bit type of a frame (RFC 9113 §6, §11.2).
type FrameType uint8

// Frame types defined by RFC 9113 §6.
const (
	FrameData         FrameType = 0x0
	FrameHeaders      FrameType = 0x1
	FramePriority     FrameType = 0x2
	FrameRSTStream    FrameType = 0x3
	FrameSettings     FrameType = 0x4
	FramePushPromise  FrameType = 0x5
	FramePing         FrameType = 0x6
	FrameGoAway       FrameType = 0x7
	FrameWindowUpdate FrameType = 0x8
	FrameContinuation FrameType = 0x9
)

var frameTypeNames = [...]string{
	FrameData:         "DATA",
	FrameHeaders:      "HEADERS",
	FramePriority:     "PRIORITY",
	FrameRSTStream:    "RST_STREAM",
	FrameSettings:     "SETTINGS",
	FramePushPromise:  "PUSH_PROMISE",
	FramePing:         "PING",
	FrameGoAway:       "GOAWAY",
	FrameWindowUpdate: "WINDOW_UPDATE",
	FrameContinuation: "CONTINUATION",
}

// String returns the RFC name of the type, or UNKNOWN_FRAME_TYPE_n.
func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return "UNKNOWN_FRAME_TYPE_" + strconv.Itoa(int(t))
}

// Flags is the 8-bit flags field of a frame header. A flag's meaning
// depends on the frame type; flags a type does not define are ignored
// (RFC 9113 §4.1).
type Flags uint8

// Frame flags (RFC 9113 §6).
const (
	FlagEndStream  Flags = 0x1  // DATA, HEADERS
	FlagAck        Flags = 0x1  // SETTINGS, PING
	FlagEndHeaders Flags = 0x4  // HEADERS, PUSH_PROMISE, CONTINUATION
	FlagPadded     Flags = 0x8  // DATA, HEADERS, PUSH_PROMISE
	FlagPriority   Flags = 0x20 // HEADERS
)

// Has reports whether all of v's bits are set in f.
func (f Flags) Has(v Flags) bool { return f&v == v }

// ErrCode is a 32-bit error code carried by RST_STREAM and GOAWAY
// (RFC 9113 §7). Unknown codes are valid on the wire and must not trigger
// special behaviour; they are treated like INTERNAL_ERROR.
type ErrCode uint32

// Error codes (RFC 9113 §7).
const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	ErrCodeNo:                 "NO_ERROR",
	ErrCodeProtocol:           "PROTOCOL_ERROR",
	ErrCodeInternal:           "INTERNAL_ERROR",
	ErrCodeFlowControl:        "FLOW_CONTROL_ERROR",
	ErrCodeSettingsTimeout:    "SETTINGS_TIMEOUT",
	ErrCodeStreamClosed:       "STREAM_CLOSED",
	ErrCodeFrameSize:          "FRAME_SIZE_ERROR",
	ErrCodeRefusedStream:      "REFUSED_STREAM",
	ErrCodeCancel:             "CANCEL",
	ErrCodeCompression:        "COMPRESSION_ERROR",
	ErrCodeConnect:            "CONNECT_ERROR",
	ErrCodeEnhanceYourCalm:    "ENHANCE_YOUR_CALM",
	ErrCodeInadequateSecurity: "INADEQUATE_SECURITY",
	ErrCodeHTTP11Required:     "HTTP_1_1_REQUIRED",
}

// String returns the RFC name of the code, or UNKNOWN_ERROR_CODE_0x....
func (c ErrCode) String() string {
	if uint64(c) < uint64(len(errCodeNames)) {
		return errCodeNames[c]
	}
	return "UNKNOWN_ERROR_CODE_0x" + strconv.FormatUint(uint64(c), 16)
}

// SettingID identifies a SETTINGS parameter (RFC 9113 §6.5.2).
type SettingID uint16

// Settings parameters: RFC 9113 §6.5.2, plus ENABLE_CONNECT_PROTOCOL
// (RFC 8441 §3) and NO_RFC7540_PRIORITIES (RFC 9218 §2.1).
const (
	SettingHeaderTableSize       SettingID = 0x1
	SettingEnablePush            SettingID = 0x2
	SettingMaxConcurrentStreams  SettingID = 0x3
	SettingInitialWindowSize     SettingID = 0x4
	SettingMaxFrameSize          SettingID = 0x5
	SettingMaxHeaderListSize     SettingID = 0x6
	SettingEnableConnectProtocol SettingID = 0x8
	SettingNoRFC7540Priorities   SettingID = 0x9
)

var settingNames = [...]string{
	SettingHeaderTableSize:       "HEADER_TABLE_SIZE",
	SettingEnablePush:            "ENABLE_PUSH",
	SettingMaxConcurrentStreams:  "MAX_CONCURRENT_STREAMS",
	SettingInitialWindowSize:     "INITIAL_WINDOW_SIZE",
	SettingMaxFrameSize:          "MAX_FRAME_SIZE",
	SettingMaxHeaderListSize:     "MAX_HEADER_LIST_SIZE",
	SettingEnableConnectProtocol: "ENABLE_CONNECT_PROTOCOL",
	SettingNoRFC7540Priorities:   "NO_RFC7540_PRIORITIES",
}

// String returns the RFC name without its SETTINGS_ prefix, or
// UNKNOWN_SETTING_n.
func (s SettingID) String() string {
	if int(s) < len(settingNames) && settingNames[s] != "" {
		return settingNames[s]
	}
	return "UNKNOWN_SETTING_" + strconv.Itoa(int(s))
}

// Setting is one SETTINGS parameter.
type Setting struct {
	ID  SettingID
	Val uint32
}

// Valid checks the value ranges of RFC 9113 §6.5.2 (and RFC 8441 §3,
// RFC 9218 §2.1) and returns the connection error a receiver must raise.
// Unknown IDs are valid: a receiver ignores them.
func (s Setting) Valid() error {
	switch s.ID {
	case SettingEnablePush:
		if s.Val > 1 {
			return errBadEnablePush
		}
	case SettingInitialWindowSize:
		if s.Val > MaxWindowSize {
			return errBadInitialWindow
		}
	case SettingMaxFrameSize:
		if s.Val < DefaultMaxFrameSize || s.Val > MaxFrameSizeLimit {
			return errBadMaxFrameSize
		}
	case SettingEnableConnectProtocol:
		if s.Val > 1 {
			return errBadConnectProtocol
		}
	case SettingNoRFC7540Priorities:
		if s.Val > 1 {
			return errBadNoPriorities
		}
	}
	return nil
}

// FrameHeader is the fixed 9-octet header of every frame (RFC 9113 §4.1).
type FrameHeader struct {
	Length   uint32 // payload length, 24 bits
	Type     FrameType
	Flags    Flags
	StreamID uint32 // 31 bits; the reserved bit is masked off when parsing
}

// ParseFrameHeader decodes the first 9 bytes of b. It reports false when
// b is shorter than that. The reserved bit of the stream identifier is
// ignored, as RFC 9113 §4.1 requires.
func ParseFrameHeader(b []byte) (FrameHeader, bool) {
	if len(b) < FrameHeaderLen {
		return FrameHeader{}, false
	}
	return FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    Flags(b[4]),
		StreamID: binary.BigEndian.Uint32(b[5:9]) & streamIDMask,
	}, true
}

// Frame is one complete frame. Payload is a view into the buffer given to
// Parser.Next: it is valid until the caller reuses that part of the
// buffer, and so are the slices the accessors return.
type Frame struct {
	FrameHeader
	Payload []byte
}

// Parser splits a byte stream into frames. Its zero value accepts frames
// up to DefaultMaxFrameSize. It keeps no other state, so one Parser may
// serve a connection for its whole life and be copied freely.
type Parser struct {
	// MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE this endpoint
	// advertised; 0 means DefaultMaxFrameSize. A frame whose Length
	// exceeds it is a FRAME_SIZE_ERROR (RFC 9113 §4.2).
	MaxFrameSize uint32
}

// Next parses the frame at the start of b.
//
//   - b holds a complete, valid frame: f is that frame, n its size
//     (header included), err nil.
//   - b holds only part of a frame: n == 0, err == nil; read more and call
//     again with the longer buffer (nothing is remembered between calls).
//   - the frame is invalid: err is a ConnectionError or a StreamError
//     (RFC 9113 §5.4). For a StreamError the frame was complete, f and n
//     are set, and the connection skips n bytes after resetting the
//     stream; a HEADERS frame with a StreamError still carries a field
//     block that must be decoded to keep HPACK in sync. For a
//     ConnectionError n may be 0 (the Length alone was too large).
//
// Next checks everything a frame can be checked for without connection
// state (RFC 9113 §4.2, §6): after it returns a nil error, the accessor of
// the frame's type succeeds. Frames of unknown types are returned
// unchecked; the connection ignores them (RFC 9113 §4.1, §5.5).
func (p *Parser) Next(b []byte) (f Frame, n int, err error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, 0, nil
	}
	h, _ := ParseFrameHeader(b)
	max := p.MaxFrameSize
	if max == 0 {
		max = DefaultMaxFrameSize
	}
	if h.Length > max {
		return Frame{FrameHeader: h}, 0, errFrameTooLarge
	}
	end := FrameHeaderLen + int(h.Length)
	if len(b) < end {
		return Frame{}, 0, nil
	}
	// Field by field: building a composite and copying it costs a
	// store-forwarding stall on the result, which lives in memory.
	f.Length, f.Type, f.Flags, f.StreamID = h.Length, h.Type, h.Flags, h.StreamID
	f.Payload = b[FrameHeaderLen:end:end]
	err = f.Validate()
	return f, end, err
}

// Validate checks the frame as Next does, apart from the length limit,
// by running the accessor of its type. Unknown types are valid.
func (f *Frame) Validate() error {
	var err error
	switch f.Type {
	case FrameData:
		_, err = f.Data()
	case FrameHeaders:
		_, err = f.Headers()
	case FramePriority:
		_, err = f.Priority()
	case FrameRSTStream:
		_, err = f.RSTStream()
	case FrameSettings:
		err = f.Settings(nil)
	case FramePushPromise:
		_, err = f.PushPromise()
	case FramePing:
		_, err = f.Ping()
	case FrameGoAway:
		_, _, _, err = f.GoAway()
	case FrameWindowUpdate:
		_, err = f.WindowUpdate()
	case FrameContinuation:
		_, _, err = f.Continuation()
	}
	return err
}

// unpad strips the Pad Length octet and the padding of a PADDED frame
// (RFC 9113 §6.1, §6.2, §6.6).
func (f *Frame) unpad() ([]byte, error) {
	p := f.Payload
	if f.Flags&FlagPadded == 0 {
		return p, nil
	}
	if len(p) == 0 {
		return nil, errPadLengthMissing
	}
	pad := int(p[0])
	if pad >= len(p) {
		return nil, errPadTooLong
	}
	return p[1 : len(p)-pad], nil
}

// Data returns the data of a DATA frame, without padding (RFC 9113
// §6.1). Flow control counts the whole Length, padding included.
func (f *Frame) Data() ([]byte, error) {
	if f.Type != FrameData {
		return nil, errWrongType
	}
	if f.StreamID == 0 {
		return nil, errDataStream0
	}
	return f.unpad()
}

// EndStream reports the END_STREAM flag of a DATA or HEADERS frame.
func (f *Frame) EndStream() bool {
	return (f.Type == FrameData || f.Type == FrameHeaders) && f.Flags&FlagEndStream != 0
}

// PriorityParam is the (deprecated, RFC 9113 §5.3.2) priority signal of a
// PRIORITY frame or of a HEADERS frame with the PRIORITY flag.
type PriorityParam struct {
	StreamDep uint32 // 31 bits
	Exclusive bool
	Weight    uint8 // the wire value: the weight is Weight+1
}

func parsePriority(b []byte) PriorityParam {
	v := binary.BigEndian.Uint32(b)
	return PriorityParam{StreamDep: v & streamIDMask, Exclusive: v>>31 == 1, Weight: b[4]}
}

// HeadersFrame is the content of a HEADERS frame (RFC 9113 §6.2).
type HeadersFrame struct {
	Fragment    []byte // field block fragment, padding removed
	HasPriority bool   // PRIORITY flag: Priority is set
	Priority    PriorityParam
	EndStream   bool
	EndHeaders  bool
}

// Headers returns the content of a HEADERS frame. A stream that depends
// on itself is a StreamError (RFC 7540 §5.3.1); the HeadersFrame is
// returned in full with it, because its field block must still be
// decoded.
func (f *Frame) Headers() (h HeadersFrame, err error) {
	// Results are assigned field by field (here and in PushPromise): a
	// composite literal copied into them costs a store-forwarding stall.
	if f.Type != FrameHeaders {
		return h, errWrongType
	}
	if f.StreamID == 0 {
		return h, errHeadersStream0
	}
	p, err := f.unpad()
	if err != nil {
		return h, err
	}
	if f.Flags&FlagPriority != 0 {
		if len(p) < 5 {
			return h, errHeadersPriorityShort
		}
		h.HasPriority = true
		h.Priority = parsePriority(p)
		p = p[5:]
	}
	h.Fragment = p
	h.EndStream = f.Flags&FlagEndStream != 0
	h.EndHeaders = f.Flags&FlagEndHeaders != 0
	if h.HasPriority && h.Priority.StreamDep == f.StreamID {
		return h, StreamError{StreamID: f.StreamID, Code: ErrCodeProtocol, Reason: "HEADERS: stream depends on itself"}
	}
	return h, nil
}

// Priority returns the content of a PRIORITY frame (RFC 9113 §6.3). A
// wrong length and a self-dependency are stream errors.
func (f *Frame) Priority() (PriorityParam, error) {
	if f.Type != FramePriority {
		return PriorityParam{}, errWrongType
	}
	if f.StreamID == 0 {
		return PriorityParam{}, errPriorityStream0
	}
	if len(f.Payload) != 5 {
		return PriorityParam{}, StreamError{StreamID: f.StreamID, Code: ErrCodeFrameSize, Reason: "PRIORITY length is not 5"}
	}
	p := parsePriority(f.Payload)
	if p.StreamDep == f.StreamID {
		return PriorityParam{}, StreamError{StreamID: f.StreamID, Code: ErrCodeProtocol, Reason: "PRIORITY: stream depends on itself"}
	}
	return p, nil
}

// RSTStream returns the error code of an RST_STREAM frame (RFC 9113
// §6.4). The code may be one this package has no name for.
func (f *Frame) RSTStream() (ErrCode, error) {
	if f.Type != FrameRSTStream {
		return 0, errWrongType
	}
	if f.StreamID == 0 {
		return 0, errRSTStream0
	}
	if len(f.Payload) != 4 {
		return 0, errRSTLength
	}
	return ErrCode(binary.BigEndian.Uint32(f.Payload)), nil
}

// IsAck reports the ACK flag of a SETTINGS or PING frame.
func (f *Frame) IsAck() bool {
	return (f.Type == FrameSettings || f.Type == FramePing) && f.Flags&FlagAck != 0
}

// Settings validates a SETTINGS frame (RFC 9113 §6.5) and calls fn, if
// not nil, for each parameter in order, unknown ones included (the
// connection must ignore those). It stops at the first error fn returns
// and returns it. Values are checked before fn sees them: ENABLE_PUSH,
// ENABLE_CONNECT_PROTOCOL and NO_RFC7540_PRIORITIES other than 0 or 1
// and MAX_FRAME_SIZE outside [2^14, 2^24-1] are PROTOCOL_ERROR,
// INITIAL_WINDOW_SIZE above 2^31-1 is FLOW_CONTROL_ERROR, all connection
// errors. An ACK has no parameters.
func (f *Frame) Settings(fn func(id SettingID, val uint32) error) error {
	if f.Type != FrameSettings {
		return errWrongType
	}
	if f.StreamID != 0 {
		return errSettingsStream
	}
	if f.Flags&FlagAck != 0 {
		if len(f.Payload) != 0 {
			return errSettingsAckLength
		}
		return nil
	}
	if len(f.Payload)%6 != 0 {
		return errSettingsLength
	}
	for p := f.Payload; len(p) >= 6; p = p[6:] {
		s := Setting{ID: SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:6])}
		if err := s.Valid(); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(s.ID, s.Val); err != nil {
				return err
			}
		}
	}
	return nil
}

// NumSettings returns the number of parameters in a SETTINGS frame (0 for
// an ACK or another type), for use with SettingAt.
func (f *Frame) NumSettings() int {
	if f.Type != FrameSettings || f.Flags&FlagAck != 0 {
		return 0
	}
	return len(f.Payload) / 6
}

// SettingAt returns parameter i of a SETTINGS frame that Next accepted,
// 0 <= i < NumSettings().
func (f *Frame) SettingAt(i int) Setting {
	p := f.Payload[6*i : 6*i+6]
	return Setting{ID: SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:6])}
}

// PushPromiseFrame is the content of a PUSH_PROMISE frame (RFC 9113 §6.6).
type PushPromiseFrame struct {
	PromisedID uint32 // 31 bits
	Fragment   []byte // field block fragment, padding removed
	EndHeaders bool
}

// PushPromise returns the content of a PUSH_PROMISE frame. A promised
// stream identifier that no server could use (0, or odd: RFC 9113
// §5.1.1) is a connection error; whether it is the next one is left to
// the connection.
func (f *Frame) PushPromise() (pp PushPromiseFrame, err error) {
	if f.Type != FramePushPromise {
		return pp, errWrongType
	}
	if f.StreamID == 0 {
		return pp, errPushPromiseStream0
	}
	p, err := f.unpad()
	if err != nil {
		return pp, err
	}
	if len(p) < 4 {
		return pp, errPushPromiseShort
	}
	id := binary.BigEndian.Uint32(p) & streamIDMask
	if id == 0 || id&1 == 1 {
		return pp, errPromisedID
	}
	pp.PromisedID = id
	pp.Fragment = p[4:]
	pp.EndHeaders = f.Flags&FlagEndHeaders != 0
	return pp, nil
}

// Ping returns the opaque data of a PING frame (RFC 9113 §6.7).
func (f *Frame) Ping() ([8]byte, error) {
	var d [8]byte
	if f.Type != FramePing {
		return d, errWrongType
	}
	if f.StreamID != 0 {
		return d, errPingStream
	}
	if len(f.Payload) != 8 {
		return d, errPingLength
	}
	copy(d[:], f.Payload)
	return d, nil
}

// GoAway returns the content of a GOAWAY frame (RFC 9113 §6.8). debug is
// a view into the payload.
func (f *Frame) GoAway() (lastStream uint32, code ErrCode, debug []byte, err error) {
	if f.Type != FrameGoAway {
		return 0, 0, nil, errWrongType
	}
	if f.StreamID != 0 {
		return 0, 0, nil, errGoAwayStream
	}
	if len(f.Payload) < 8 {
		return 0, 0, nil, errGoAwayShort
	}
	p := f.Payload
	return binary.BigEndian.Uint32(p) & streamIDMask, ErrCode(binary.BigEndian.Uint32(p[4:8])), p[8:], nil
}

// WindowUpdate returns the increment of a WINDOW_UPDATE frame (RFC 9113
// §6.9), reserved bit cleared. An increment of 0 is a stream error on a
// stream and a connection error on stream 0.
func (f *Frame) WindowUpdate() (uint32, error) {
	if f.Type != FrameWindowUpdate {
		return 0, errWrongType
	}
	if len(f.Payload) != 4 {
		return 0, errWindowUpdateLength
	}
	inc := binary.BigEndian.Uint32(f.Payload) & streamIDMask
	if inc == 0 {
		if f.StreamID == 0 {
			return 0, errWindowUpdateZero
		}
		return 0, StreamError{StreamID: f.StreamID, Code: ErrCodeProtocol, Reason: "WINDOW_UPDATE increment is 0"}
	}
	return inc, nil
}

// Continuation returns the field block fragment of a CONTINUATION frame
// and its END_HEADERS flag (RFC 9113 §6.10).
func (f *Frame) Continuation() (fragment []byte, endHeaders bool, err error) {
	if f.Type != FrameContinuation {
		return nil, false, errWrongType
	}
	if f.StreamID == 0 {
		return nil, false, errContinuationStream0
	}
	return f.Payload, f.Flags&FlagEndHeaders != 0, nil
}
