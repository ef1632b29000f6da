package h2

import "encoding/binary"

// The Append functions write one frame at the end of dst and return the
// extended slice, like append: they do not allocate when dst has the
// capacity. They do not check payloads against the peer's
// SETTINGS_MAX_FRAME_SIZE, which is the caller's to respect; a payload
// longer than the 24-bit Length field can express panics, as it can only
// come from a programming error. Stream identifiers are written with the
// reserved bit clear.

func checkLen(n int) uint32 {
	if n < 0 || n > MaxFrameSizeLimit {
		panic("h2: frame payload longer than 2^24-1")
	}
	return uint32(n)
}

// AppendFrameHeader appends the 9-octet header h (RFC 9113 §4.1).
func AppendFrameHeader(dst []byte, h FrameHeader) []byte {
	checkLen(int(h.Length))
	sid := h.StreamID & streamIDMask
	return append(dst,
		byte(h.Length>>16), byte(h.Length>>8), byte(h.Length),
		byte(h.Type), byte(h.Flags),
		byte(sid>>24), byte(sid>>16), byte(sid>>8), byte(sid))
}

func appendHeader(dst []byte, n int, t FrameType, fl Flags, sid uint32) []byte {
	return AppendFrameHeader(dst, FrameHeader{Length: checkLen(n), Type: t, Flags: fl, StreamID: sid})
}

func appendUint32(dst []byte, v uint32) []byte {
	return binary.BigEndian.AppendUint32(dst, v)
}

// AppendData appends a DATA frame (RFC 9113 §6.1).
func AppendData(dst []byte, streamID uint32, endStream bool, data []byte) []byte {
	var fl Flags
	if endStream {
		fl = FlagEndStream
	}
	dst = appendHeader(dst, len(data), FrameData, fl, streamID)
	return append(dst, data...)
}

// AppendDataPadded appends a DATA frame with the PADDED flag and pad
// octets of zero padding (RFC 9113 §6.1).
func AppendDataPadded(dst []byte, streamID uint32, endStream bool, data []byte, pad uint8) []byte {
	fl := FlagPadded
	if endStream {
		fl |= FlagEndStream
	}
	dst = appendHeader(dst, 1+len(data)+int(pad), FrameData, fl, streamID)
	dst = append(dst, pad)
	dst = append(dst, data...)
	return appendZeros(dst, int(pad))
}

func appendZeros(dst []byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, 0)
	}
	return dst
}

func headersFlags(endStream, endHeaders bool) Flags {
	var fl Flags
	if endStream {
		fl |= FlagEndStream
	}
	if endHeaders {
		fl |= FlagEndHeaders
	}
	return fl
}

// AppendHeaders appends a HEADERS frame without priority or padding
// (RFC 9113 §6.2). fragment is (part of) an HPACK-encoded field block;
// when endHeaders is false, CONTINUATION frames must follow.
func AppendHeaders(dst []byte, streamID uint32, endStream, endHeaders bool, fragment []byte) []byte {
	dst = appendHeader(dst, len(fragment), FrameHeaders, headersFlags(endStream, endHeaders), streamID)
	return append(dst, fragment...)
}

// AppendHeadersPriority appends a HEADERS frame with the PRIORITY flag.
func AppendHeadersPriority(dst []byte, streamID uint32, endStream, endHeaders bool, prio PriorityParam, fragment []byte) []byte {
	fl := headersFlags(endStream, endHeaders) | FlagPriority
	dst = appendHeader(dst, 5+len(fragment), FrameHeaders, fl, streamID)
	dst = appendPriority(dst, prio)
	return append(dst, fragment...)
}

func appendPriority(dst []byte, p PriorityParam) []byte {
	v := p.StreamDep & streamIDMask
	if p.Exclusive {
		v |= 1 << 31
	}
	return append(appendUint32(dst, v), p.Weight)
}

// AppendContinuation appends a CONTINUATION frame (RFC 9113 §6.10).
func AppendContinuation(dst []byte, streamID uint32, endHeaders bool, fragment []byte) []byte {
	dst = appendHeader(dst, len(fragment), FrameContinuation, headersFlags(false, endHeaders), streamID)
	return append(dst, fragment...)
}

// AppendPushPromise appends a PUSH_PROMISE frame (RFC 9113 §6.6).
func AppendPushPromise(dst []byte, streamID, promisedID uint32, endHeaders bool, fragment []byte) []byte {
	dst = appendHeader(dst, 4+len(fragment), FramePushPromise, headersFlags(false, endHeaders), streamID)
	dst = appendUint32(dst, promisedID&streamIDMask)
	return append(dst, fragment...)
}

// AppendPriority appends a PRIORITY frame (RFC 9113 §6.3).
func AppendPriority(dst []byte, streamID uint32, prio PriorityParam) []byte {
	dst = appendHeader(dst, 5, FramePriority, 0, streamID)
	return appendPriority(dst, prio)
}

// AppendRSTStream appends an RST_STREAM frame (RFC 9113 §6.4).
func AppendRSTStream(dst []byte, streamID uint32, code ErrCode) []byte {
	dst = appendHeader(dst, 4, FrameRSTStream, 0, streamID)
	return appendUint32(dst, uint32(code))
}

// AppendSettings appends a SETTINGS frame with the given parameters
// (RFC 9113 §6.5). With ack set it appends an acknowledgement, which has
// no parameters: settings must then be empty. Passing an existing slice
// (AppendSettings(dst, false, s...)) does not allocate.
func AppendSettings(dst []byte, ack bool, settings ...Setting) []byte {
	if ack {
		if len(settings) != 0 {
			panic("h2: SETTINGS ACK with parameters")
		}
		return AppendSettingsAck(dst)
	}
	dst = AppendSettingsHeader(dst, len(settings))
	for _, s := range settings {
		dst = AppendSetting(dst, s.ID, s.Val)
	}
	return dst
}

// AppendSettingsAck appends a SETTINGS frame with the ACK flag.
func AppendSettingsAck(dst []byte) []byte {
	return appendHeader(dst, 0, FrameSettings, FlagAck, 0)
}

// AppendSettingsHeader appends the header of a SETTINGS frame that will
// hold count parameters; the caller then appends each with AppendSetting.
// Together they form the allocation-free way to write SETTINGS.
func AppendSettingsHeader(dst []byte, count int) []byte {
	return appendHeader(dst, 6*count, FrameSettings, 0, 0)
}

// AppendSetting appends one 6-octet SETTINGS parameter (no frame header).
func AppendSetting(dst []byte, id SettingID, val uint32) []byte {
	dst = append(dst, byte(id>>8), byte(id))
	return appendUint32(dst, val)
}

// AppendPing appends a PING frame (RFC 9113 §6.7).
func AppendPing(dst []byte, ack bool, data [8]byte) []byte {
	var fl Flags
	if ack {
		fl = FlagAck
	}
	dst = appendHeader(dst, 8, FramePing, fl, 0)
	return append(dst, data[:]...)
}

// AppendGoAway appends a GOAWAY frame (RFC 9113 §6.8).
func AppendGoAway(dst []byte, lastStreamID uint32, code ErrCode, debug []byte) []byte {
	dst = appendHeader(dst, 8+len(debug), FrameGoAway, 0, 0)
	dst = appendUint32(dst, lastStreamID&streamIDMask)
	dst = appendUint32(dst, uint32(code))
	return append(dst, debug...)
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame (RFC 9113 §6.9).
// streamID 0 updates the connection window. incr must be in
// [1, 2^31-1]; the caller checks.
func AppendWindowUpdate(dst []byte, streamID uint32, incr uint32) []byte {
	dst = appendHeader(dst, 4, FrameWindowUpdate, 0, streamID)
	return appendUint32(dst, incr&streamIDMask)
}
