package h2

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNames(t *testing.T) {
	assert.Equal(t, "DATA", FrameData.String())
	assert.Equal(t, "CONTINUATION", FrameContinuation.String())
	assert.Equal(t, "UNKNOWN_FRAME_TYPE_42", FrameType(42).String())
	assert.Equal(t, "NO_ERROR", ErrCodeNo.String())
	assert.Equal(t, "HTTP_1_1_REQUIRED", ErrCodeHTTP11Required.String())
	assert.Equal(t, "UNKNOWN_ERROR_CODE_0xff", ErrCode(0xff).String())
	assert.Equal(t, "MAX_HEADER_LIST_SIZE", SettingMaxHeaderListSize.String())
	assert.Equal(t, "NO_RFC7540_PRIORITIES", SettingNoRFC7540Priorities.String())
	assert.Equal(t, "UNKNOWN_SETTING_7", SettingID(7).String())
	assert.Equal(t, "UNKNOWN_SETTING_1000", SettingID(1000).String())
	assert.True(t, (FlagEndHeaders | FlagEndStream).Has(FlagEndStream))
	assert.False(t, FlagEndHeaders.Has(FlagPadded))
	assert.Len(t, ClientPreface, 24)
	assert.Contains(t, StreamError{StreamID: 7, Code: ErrCodeCancel, Reason: "x"}.Error(), "stream 7 CANCEL: x")
	assert.Contains(t, ConnectionError{Code: ErrCodeFrameSize, Reason: "y"}.Error(), "FRAME_SIZE_ERROR: y")
}

func TestParseFrameHeader(t *testing.T) {
	_, ok := ParseFrameHeader(make([]byte, 8))
	require.False(t, ok)
	// The reserved bit of the stream identifier is masked (RFC 9113 §4.1).
	h, ok := ParseFrameHeader([]byte{0x01, 0x02, 0x03, 0x01, 0x25, 0x80, 0x00, 0x00, 0x07})
	require.True(t, ok)
	require.Equal(t, FrameHeader{Length: 0x010203, Type: FrameHeaders, Flags: FlagEndStream | FlagEndHeaders | FlagPriority, StreamID: 7}, h)
	require.Equal(t, []byte{0x01, 0x02, 0x03, 0x01, 0x25, 0x00, 0x00, 0x00, 0x07}, AppendFrameHeader(nil, h))
}

// Frames written out by hand from the layouts of RFC 9113 §4.1 and §6.
func TestKnownAnswers(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"DATA stream 1 END_STREAM \"hi\"", AppendData(nil, 1, true, []byte("hi")),
			"000002 00 01 00000001 6869"},
		{"HEADERS stream 1 END_STREAM|END_HEADERS", AppendHeaders(nil, 1, true, true, []byte{0x82, 0x86, 0x84}),
			"000003 01 05 00000001 828684"},
		{"SETTINGS MAX_CONCURRENT_STREAMS=100 INITIAL_WINDOW_SIZE=65535",
			AppendSettings(nil, false, Setting{SettingMaxConcurrentStreams, 100}, Setting{SettingInitialWindowSize, 65535}),
			"00000c 04 00 00000000 0003 00000064 0004 0000ffff"},
		{"SETTINGS ACK", AppendSettingsAck(nil), "000000 04 01 00000000"},
		{"PING ACK", AppendPing(nil, true, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}),
			"000008 06 01 00000000 0102030405060708"},
		{"RST_STREAM stream 3 CANCEL", AppendRSTStream(nil, 3, ErrCodeCancel),
			"000004 03 00 00000003 00000008"},
		{"WINDOW_UPDATE stream 0 +65535", AppendWindowUpdate(nil, 0, 65535),
			"000004 08 00 00000000 0000ffff"},
		{"GOAWAY last 5 PROTOCOL_ERROR \"x\"", AppendGoAway(nil, 5, ErrCodeProtocol, []byte("x")),
			"000009 07 00 00000000 00000005 00000001 78"},
		{"PRIORITY stream 5 exclusive on 3 weight 15", AppendPriority(nil, 5, PriorityParam{StreamDep: 3, Exclusive: true, Weight: 15}),
			"000005 02 00 00000005 80000003 0f"},
		{"PUSH_PROMISE stream 1 promises 2", AppendPushPromise(nil, 1, 2, true, []byte{0x82}),
			"000005 05 04 00000001 00000002 82"},
		{"CONTINUATION stream 1 END_HEADERS", AppendContinuation(nil, 1, true, []byte{0xbe}),
			"000001 09 04 00000001 be"},
		{"DATA padded", AppendDataPadded(nil, 1, false, []byte("a"), 2),
			"000004 00 08 00000001 02 61 0000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := dehex(c.want)
			require.Equal(t, want, c.got)
			f := parseOne(t, want)
			require.Equal(t, uint32(len(want)-9), f.Length)
		})
	}
	// And the other way: hand-written bytes decode to the right values.
	f := parseOne(t, dehex("00000c 04 00 00000000 0003 00000064 0004 0000ffff"))
	var got []Setting
	require.NoError(t, f.Settings(func(id SettingID, v uint32) error { got = append(got, Setting{id, v}); return nil }))
	require.Equal(t, []Setting{{SettingMaxConcurrentStreams, 100}, {SettingInitialWindowSize, 65535}}, got)
	f = parseOne(t, dehex("000004 08 00 00000001 8000ffff")) // reserved bit set in the increment
	inc, err := f.WindowUpdate()
	require.NoError(t, err)
	require.Equal(t, uint32(0xffff), inc)
}

func TestRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	frag := []byte{0x82, 0x86, 0x84, 0x41, 0x0f}

	t.Run("DATA", func(t *testing.T) {
		for _, end := range []bool{false, true} {
			f := parseOne(t, AppendData(nil, 1, end, data))
			require.Equal(t, FrameData, f.Type)
			require.Equal(t, uint32(1), f.StreamID)
			require.Equal(t, end, f.EndStream())
			d, err := f.Data()
			require.NoError(t, err)
			require.Equal(t, data, d)
		}
		f := parseOne(t, AppendData(nil, 3, true, nil))
		d, err := f.Data()
		require.NoError(t, err)
		require.Empty(t, d)
	})
	t.Run("DATA padded", func(t *testing.T) {
		for _, pad := range []uint8{0, 1, 255} {
			b := AppendDataPadded(nil, 7, true, data, pad)
			f := parseOne(t, b)
			require.Equal(t, uint32(1+len(data)+int(pad)), f.Length)
			require.True(t, f.EndStream())
			d, err := f.Data()
			require.NoError(t, err)
			require.Equal(t, data, d)
		}
	})
	t.Run("HEADERS", func(t *testing.T) {
		for _, fl := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			f := parseOne(t, AppendHeaders(nil, 5, fl[0], fl[1], frag))
			h, err := f.Headers()
			require.NoError(t, err)
			require.Equal(t, HeadersFrame{Fragment: frag, EndStream: fl[0], EndHeaders: fl[1]}, h)
		}
		prio := PriorityParam{StreamDep: 3, Exclusive: true, Weight: 200}
		f := parseOne(t, AppendHeadersPriority(nil, 5, true, true, prio, frag))
		h, err := f.Headers()
		require.NoError(t, err)
		require.Equal(t, HeadersFrame{Fragment: frag, HasPriority: true, Priority: prio, EndStream: true, EndHeaders: true}, h)
	})
	t.Run("HEADERS padded with priority", func(t *testing.T) {
		// Pad Length 3, E=0 dependency 1, weight 16, fragment, 3 octets of padding.
		b := raw(FrameHeaders, FlagPadded|FlagPriority|FlagEndHeaders, 3,
			append(append([]byte{3, 0, 0, 0, 1, 16}, frag...), 0, 0, 0)...)
		h, err := parseOne(t, b).Headers()
		require.NoError(t, err)
		require.Equal(t, HeadersFrame{Fragment: frag, HasPriority: true, Priority: PriorityParam{StreamDep: 1, Weight: 16}, EndHeaders: true}, h)
	})
	t.Run("PRIORITY", func(t *testing.T) {
		prio := PriorityParam{StreamDep: 1<<31 - 1, Weight: 255}
		p, err := parseOne(t, AppendPriority(nil, 9, prio)).Priority()
		require.NoError(t, err)
		require.Equal(t, prio, p)
	})
	t.Run("RST_STREAM", func(t *testing.T) {
		for _, c := range []ErrCode{ErrCodeNo, ErrCodeHTTP11Required, 0xdeadbeef} {
			code, err := parseOne(t, AppendRSTStream(nil, 1, c)).RSTStream()
			require.NoError(t, err)
			require.Equal(t, c, code)
		}
	})
	t.Run("SETTINGS", func(t *testing.T) {
		f := parseOne(t, AppendSettings(nil, false))
		require.False(t, f.IsAck())
		require.NoError(t, f.Settings(func(SettingID, uint32) error { t.Fatal("no settings expected"); return nil }))
		f = parseOne(t, AppendSettings(nil, true))
		require.True(t, f.IsAck())
		require.NoError(t, f.Settings(nil))
		require.Equal(t, 0, f.NumSettings())
	})
	t.Run("PUSH_PROMISE", func(t *testing.T) {
		pp, err := parseOne(t, AppendPushPromise(nil, 1, 4, false, frag)).PushPromise()
		require.NoError(t, err)
		require.Equal(t, PushPromiseFrame{PromisedID: 4, Fragment: frag}, pp)
		// Padded, written by hand.
		b := raw(FramePushPromise, FlagPadded|FlagEndHeaders, 1, append([]byte{2, 0, 0, 0, 6}, append(frag, 0, 0)...)...)
		pp, err = parseOne(t, b).PushPromise()
		require.NoError(t, err)
		require.Equal(t, PushPromiseFrame{PromisedID: 6, Fragment: frag, EndHeaders: true}, pp)
	})
	t.Run("PING", func(t *testing.T) {
		d := [8]byte{8, 7, 6, 5, 4, 3, 2, 1}
		for _, ack := range []bool{false, true} {
			f := parseOne(t, AppendPing(nil, ack, d))
			require.Equal(t, ack, f.IsAck())
			got, err := f.Ping()
			require.NoError(t, err)
			require.Equal(t, d, got)
		}
	})
	t.Run("GOAWAY", func(t *testing.T) {
		last, code, debug, err := parseOne(t, AppendGoAway(nil, 1<<31-1, ErrCodeEnhanceYourCalm, []byte("slow down"))).GoAway()
		require.NoError(t, err)
		require.Equal(t, uint32(1<<31-1), last)
		require.Equal(t, ErrCodeEnhanceYourCalm, code)
		require.Equal(t, "slow down", string(debug))
		_, _, debug, err = parseOne(t, AppendGoAway(nil, 0, ErrCodeNo, nil)).GoAway()
		require.NoError(t, err)
		require.Empty(t, debug)
	})
	t.Run("WINDOW_UPDATE", func(t *testing.T) {
		for _, sid := range []uint32{0, 1} {
			for _, inc := range []uint32{1, MaxWindowSize} {
				got, err := parseOne(t, AppendWindowUpdate(nil, sid, inc)).WindowUpdate()
				require.NoError(t, err)
				require.Equal(t, inc, got)
			}
		}
	})
	t.Run("CONTINUATION", func(t *testing.T) {
		for _, end := range []bool{false, true} {
			frag2, eh, err := parseOne(t, AppendContinuation(nil, 1, end, frag)).Continuation()
			require.NoError(t, err)
			require.Equal(t, frag, frag2)
			require.Equal(t, end, eh)
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		b := raw(0xfa, 0xff, 1, 1, 2, 3)
		f := parseOne(t, b)
		require.Equal(t, FrameType(0xfa), f.Type)
		require.Equal(t, []byte{1, 2, 3}, f.Payload)
		require.NoError(t, f.Validate())
	})
}

func TestSettingsEverySetting(t *testing.T) {
	all := []Setting{
		{SettingHeaderTableSize, 0},
		{SettingEnablePush, 0},
		{SettingMaxConcurrentStreams, 0xffffffff},
		{SettingInitialWindowSize, MaxWindowSize},
		{SettingMaxFrameSize, MaxFrameSizeLimit},
		{SettingMaxHeaderListSize, 65536},
		{SettingEnableConnectProtocol, 1},
		{SettingNoRFC7540Priorities, 1},
		{0x7, 5},               // unassigned: passed on, to be ignored
		{0xabcd, 99},           // unknown
		{SettingEnablePush, 1}, // repeated: the connection applies them in order
	}
	b := AppendSettings(nil, false, all...)
	require.Len(t, b, 9+6*len(all))
	f := parseOne(t, b)
	var got []Setting
	require.NoError(t, f.Settings(func(id SettingID, v uint32) error {
		got = append(got, Setting{id, v})
		return nil
	}))
	require.Equal(t, all, got)
	require.Equal(t, len(all), f.NumSettings())
	for i, s := range all {
		require.Equal(t, s, f.SettingAt(i))
	}
	// The allocation-free form writes the same bytes.
	b2 := AppendSettingsHeader(nil, len(all))
	for _, s := range all {
		b2 = AppendSetting(b2, s.ID, s.Val)
	}
	require.Equal(t, b, b2)
	// An error from the callback stops the iteration and is returned.
	n := 0
	stop := ConnectionError{Code: ErrCodeInternal, Reason: "stop"}
	require.Equal(t, error(stop), f.Settings(func(SettingID, uint32) error { n++; return stop }))
	require.Equal(t, 1, n)
	// Boundary values that are valid.
	for _, s := range []Setting{{SettingMaxFrameSize, DefaultMaxFrameSize}, {SettingInitialWindowSize, 0}, {SettingEnableConnectProtocol, 0}} {
		require.NoError(t, s.Valid())
	}
}

func TestValidationErrors(t *testing.T) {
	pad := func(n int) []byte { return make([]byte, n) }
	cases := []struct {
		name   string
		b      []byte
		code   ErrCode
		conn   bool   // connection error, else stream error on stream sid
		sid    uint32 // for stream errors
		maxLen uint32 // Parser.MaxFrameSize
	}{
		// §4.2: frame size.
		{name: "DATA longer than MaxFrameSize", b: raw(FrameData, 0, 1, pad(DefaultMaxFrameSize+1)...), code: ErrCodeFrameSize, conn: true},
		{name: "unknown type longer than MaxFrameSize", b: raw(0x20, 0, 1, pad(101)...), code: ErrCodeFrameSize, conn: true, maxLen: 100},
		{name: "SETTINGS longer than MaxFrameSize", b: raw(FrameSettings, 0, 0, pad(102)...), code: ErrCodeFrameSize, conn: true, maxLen: 100},
		// Stream 0 where forbidden.
		{name: "DATA stream 0", b: raw(FrameData, 0, 0, 1), code: ErrCodeProtocol, conn: true},
		{name: "HEADERS stream 0", b: raw(FrameHeaders, FlagEndHeaders, 0, 0x82), code: ErrCodeProtocol, conn: true},
		{name: "PRIORITY stream 0", b: raw(FramePriority, 0, 0, 0, 0, 0, 1, 16), code: ErrCodeProtocol, conn: true},
		{name: "RST_STREAM stream 0", b: raw(FrameRSTStream, 0, 0, 0, 0, 0, 8), code: ErrCodeProtocol, conn: true},
		{name: "PUSH_PROMISE stream 0", b: raw(FramePushPromise, 0, 0, 0, 0, 0, 2), code: ErrCodeProtocol, conn: true},
		{name: "CONTINUATION stream 0", b: raw(FrameContinuation, 0, 0, 0x82), code: ErrCodeProtocol, conn: true},
		// Non-zero stream where forbidden.
		{name: "SETTINGS stream 1", b: raw(FrameSettings, 0, 1), code: ErrCodeProtocol, conn: true},
		{name: "PING stream 1", b: raw(FramePing, 0, 1, pad(8)...), code: ErrCodeProtocol, conn: true},
		{name: "GOAWAY stream 1", b: raw(FrameGoAway, 0, 1, pad(8)...), code: ErrCodeProtocol, conn: true},
		// Fixed sizes.
		{name: "PRIORITY length 4", b: raw(FramePriority, 0, 3, 0, 0, 0, 1), code: ErrCodeFrameSize, sid: 3},
		{name: "PRIORITY length 6", b: raw(FramePriority, 0, 3, 0, 0, 0, 1, 16, 0), code: ErrCodeFrameSize, sid: 3},
		{name: "RST_STREAM length 3", b: raw(FrameRSTStream, 0, 1, 0, 0, 8), code: ErrCodeFrameSize, conn: true},
		{name: "RST_STREAM length 5", b: raw(FrameRSTStream, 0, 1, 0, 0, 0, 8, 0), code: ErrCodeFrameSize, conn: true},
		{name: "PING length 7", b: raw(FramePing, 0, 0, pad(7)...), code: ErrCodeFrameSize, conn: true},
		{name: "PING length 9", b: raw(FramePing, FlagAck, 0, pad(9)...), code: ErrCodeFrameSize, conn: true},
		{name: "WINDOW_UPDATE length 3", b: raw(FrameWindowUpdate, 0, 1, 0, 0, 1), code: ErrCodeFrameSize, conn: true},
		{name: "WINDOW_UPDATE length 5", b: raw(FrameWindowUpdate, 0, 0, 0, 0, 0, 1, 0), code: ErrCodeFrameSize, conn: true},
		{name: "SETTINGS length 5", b: raw(FrameSettings, 0, 0, pad(5)...), code: ErrCodeFrameSize, conn: true},
		{name: "SETTINGS length 7", b: raw(FrameSettings, 0, 0, pad(7)...), code: ErrCodeFrameSize, conn: true},
		{name: "SETTINGS ACK with payload", b: raw(FrameSettings, FlagAck, 0, 0, 3, 0, 0, 0, 1), code: ErrCodeFrameSize, conn: true},
		{name: "GOAWAY length 7", b: raw(FrameGoAway, 0, 0, pad(7)...), code: ErrCodeFrameSize, conn: true},
		{name: "PUSH_PROMISE length 3", b: raw(FramePushPromise, 0, 1, 0, 0, 2), code: ErrCodeFrameSize, conn: true},
		{name: "HEADERS PRIORITY length 4", b: raw(FrameHeaders, FlagPriority, 1, 0, 0, 0, 3), code: ErrCodeFrameSize, conn: true},
		// Padding.
		{name: "DATA PADDED empty", b: raw(FrameData, FlagPadded, 1), code: ErrCodeFrameSize, conn: true},
		{name: "DATA pad = length", b: raw(FrameData, FlagPadded, 1, 3, 0, 0), code: ErrCodeProtocol, conn: true},
		{name: "DATA pad > length", b: raw(FrameData, FlagPadded, 1, 200, 'a'), code: ErrCodeProtocol, conn: true},
		{name: "HEADERS pad = length", b: raw(FrameHeaders, FlagPadded, 1, 2, 0x82), code: ErrCodeProtocol, conn: true},
		{name: "HEADERS PADDED empty", b: raw(FrameHeaders, FlagPadded, 1), code: ErrCodeFrameSize, conn: true},
		{name: "HEADERS PADDED|PRIORITY, no room for priority", b: raw(FrameHeaders, FlagPadded|FlagPriority, 1, 1, 0, 0, 0, 3, 0), code: ErrCodeFrameSize, conn: true},
		{name: "PUSH_PROMISE pad = length", b: raw(FramePushPromise, FlagPadded, 1, 5, 0, 0, 0, 2), code: ErrCodeProtocol, conn: true},
		// Values.
		{name: "WINDOW_UPDATE 0 on connection", b: raw(FrameWindowUpdate, 0, 0, 0, 0, 0, 0), code: ErrCodeProtocol, conn: true},
		{name: "WINDOW_UPDATE 0 on stream", b: raw(FrameWindowUpdate, 0, 5, 0, 0, 0, 0), code: ErrCodeProtocol, sid: 5},
		{name: "WINDOW_UPDATE only reserved bit", b: raw(FrameWindowUpdate, 0, 5, 0x80, 0, 0, 0), code: ErrCodeProtocol, sid: 5},
		{name: "SETTINGS ENABLE_PUSH 2", b: raw(FrameSettings, 0, 0, 0, 2, 0, 0, 0, 2), code: ErrCodeProtocol, conn: true},
		{name: "SETTINGS INITIAL_WINDOW_SIZE 2^31", b: raw(FrameSettings, 0, 0, 0, 4, 0x80, 0, 0, 0), code: ErrCodeFlowControl, conn: true},
		{name: "SETTINGS MAX_FRAME_SIZE 16383", b: raw(FrameSettings, 0, 0, 0, 5, 0, 0, 0x3f, 0xff), code: ErrCodeProtocol, conn: true},
		{name: "SETTINGS MAX_FRAME_SIZE 2^24", b: raw(FrameSettings, 0, 0, 0, 5, 1, 0, 0, 0), code: ErrCodeProtocol, conn: true},
		{name: "SETTINGS ENABLE_CONNECT_PROTOCOL 2", b: raw(FrameSettings, 0, 0, 0, 8, 0, 0, 0, 2), code: ErrCodeProtocol, conn: true},
		{name: "SETTINGS NO_RFC7540_PRIORITIES 2", b: raw(FrameSettings, 0, 0, 0, 9, 0, 0, 0, 2), code: ErrCodeProtocol, conn: true},
		{name: "SETTINGS bad value after good one", b: raw(FrameSettings, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0, 0, 7), code: ErrCodeProtocol, conn: true},
		{name: "PRIORITY self-dependency", b: raw(FramePriority, 0, 7, 0x80, 0, 0, 7, 16), code: ErrCodeProtocol, sid: 7},
		{name: "HEADERS self-dependency", b: raw(FrameHeaders, FlagPriority|FlagEndHeaders, 7, 0, 0, 0, 7, 16, 0x82), code: ErrCodeProtocol, sid: 7},
		{name: "PUSH_PROMISE promises 0", b: raw(FramePushPromise, FlagEndHeaders, 1, 0, 0, 0, 0), code: ErrCodeProtocol, conn: true},
		{name: "PUSH_PROMISE promises odd", b: raw(FramePushPromise, FlagEndHeaders, 1, 0, 0, 0, 3), code: ErrCodeProtocol, conn: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Parser{MaxFrameSize: c.maxLen}
			f, n, err := p.Next(c.b)
			if c.conn {
				requireConnErr(t, err, c.code)
			} else {
				requireStreamErr(t, err, c.sid, c.code)
				// A stream error comes with the whole frame, so that the
				// connection can skip it and go on.
				require.Equal(t, len(c.b), n)
				require.Equal(t, c.b[9:], f.Payload)
			}
			code, sid, conn, ok := Classify(err)
			require.True(t, ok)
			require.Equal(t, c.code, code)
			require.Equal(t, c.conn, conn)
			require.Equal(t, c.sid, sid)
			// The typed accessor reports the same error.
			if n > 0 {
				require.Equal(t, err, f.Validate())
			}
		})
	}
}

func TestHeadersSelfDependencyKeepsFragment(t *testing.T) {
	b := raw(FrameHeaders, FlagPriority|FlagEndHeaders, 7, 0, 0, 0, 7, 16, 0x82, 0x86)
	f, n, err := (&Parser{}).Next(b)
	requireStreamErr(t, err, 7, ErrCodeProtocol)
	require.Equal(t, len(b), n)
	h, err := f.Headers()
	require.Error(t, err)
	require.Equal(t, []byte{0x82, 0x86}, h.Fragment, "the block must still reach the HPACK decoder")
	require.True(t, h.EndHeaders)
}

func TestFrameTooLargeBeforePayload(t *testing.T) {
	// The Length alone decides: no need to wait for 16 MiB.
	b := raw(FrameData, 0, 1)
	b[0] = 0xff
	f, n, err := (&Parser{}).Next(b)
	requireConnErr(t, err, ErrCodeFrameSize)
	require.Equal(t, 0, n)
	require.Equal(t, uint32(0xff0000), f.Length)
	// A larger MaxFrameSize accepts it, once complete.
	p := Parser{MaxFrameSize: MaxFrameSizeLimit}
	_, n, err = p.Next(b)
	require.NoError(t, err)
	require.Equal(t, 0, n)
}

func TestAccessorOnWrongType(t *testing.T) {
	f := parseOne(t, AppendPing(nil, false, [8]byte{}))
	_, err := f.Data()
	require.ErrorIs(t, err, errWrongType)
	_, err = f.Headers()
	require.ErrorIs(t, err, errWrongType)
	_, err = f.Priority()
	require.ErrorIs(t, err, errWrongType)
	_, err = f.RSTStream()
	require.ErrorIs(t, err, errWrongType)
	require.ErrorIs(t, f.Settings(nil), errWrongType)
	_, err = f.PushPromise()
	require.ErrorIs(t, err, errWrongType)
	_, _, _, err = f.GoAway()
	require.ErrorIs(t, err, errWrongType)
	_, err = f.WindowUpdate()
	require.ErrorIs(t, err, errWrongType)
	_, _, err = f.Continuation()
	require.ErrorIs(t, err, errWrongType)
	f = parseOne(t, AppendData(nil, 1, true, nil))
	_, err = f.Ping()
	require.ErrorIs(t, err, errWrongType)
	_, _, ok, _ := Classify(errWrongType)
	require.False(t, ok)
}

// allFrames returns one valid frame of every type, and an unknown one.
func allFrames() [][]byte {
	frag := []byte{0x82, 0x86, 0x84}
	return [][]byte{
		AppendData(nil, 1, false, []byte("hello")),
		AppendDataPadded(nil, 1, true, []byte("padded"), 4),
		AppendHeaders(nil, 3, false, false, frag),
		AppendContinuation(nil, 3, true, frag),
		AppendHeadersPriority(nil, 5, true, true, PriorityParam{StreamDep: 3, Weight: 7}, frag),
		AppendPriority(nil, 7, PriorityParam{StreamDep: 5}),
		AppendRSTStream(nil, 5, ErrCodeCancel),
		AppendSettings(nil, false, Setting{SettingMaxFrameSize, 1 << 20}, Setting{SettingEnablePush, 0}),
		AppendSettingsAck(nil),
		AppendPushPromise(nil, 1, 2, true, frag),
		AppendPing(nil, false, [8]byte{1}),
		AppendGoAway(nil, 7, ErrCodeNo, []byte("bye")),
		AppendWindowUpdate(nil, 0, 1000),
		AppendWindowUpdate(nil, 1, 1),
		raw(0x42, 0, 9, 1, 2),
	}
}

func TestPartialFrames(t *testing.T) {
	var p Parser
	for _, b := range allFrames() {
		h, _ := ParseFrameHeader(b)
		for k := 0; k < len(b); k++ {
			f, n, err := p.Next(b[:k])
			require.NoError(t, err, "%v split at %d", h.Type, k)
			require.Equal(t, 0, n, "%v split at %d", h.Type, k)
			require.Equal(t, Frame{}, f)
		}
		f, n, err := p.Next(b)
		require.NoError(t, err)
		require.Equal(t, len(b), n)
		require.Equal(t, h, f.FrameHeader)
		// The payload view is capped: appending to it cannot overwrite
		// the next frame in the buffer.
		require.Equal(t, len(f.Payload), cap(f.Payload))
	}
}

func TestBackToBack(t *testing.T) {
	frames := allFrames()
	buf := []byte(ClientPreface)
	for _, b := range frames {
		buf = append(buf, b...)
	}
	require.True(t, bytes.HasPrefix(buf, []byte(ClientPreface)))
	rest := buf[len(ClientPreface):]
	var p Parser
	for i, want := range frames {
		f, n, err := p.Next(rest)
		require.NoError(t, err, "frame %d", i)
		require.Equal(t, len(want), n, "frame %d", i)
		require.Equal(t, want[9:], f.Payload)
		// Views, not copies.
		if len(f.Payload) > 0 {
			require.Same(t, &rest[9], &f.Payload[0])
		}
		rest = rest[n:]
	}
	require.Empty(t, rest)
	f, n, err := p.Next(rest)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, Frame{}, f)
}

func TestAppendReusesCapacity(t *testing.T) {
	buf := make([]byte, 0, 256)
	out := AppendData(buf, 1, false, []byte("abc"))
	require.Same(t, &buf[:1][0], &out[0])
	out = AppendWindowUpdate(out, 1, 3)
	require.Same(t, &buf[:1][0], &out[0])
	require.Len(t, out, 9+3+9+4)
}

func TestAppendPanicsOnOversizedPayload(t *testing.T) {
	require.Panics(t, func() { AppendFrameHeader(nil, FrameHeader{Length: 1 << 24}) })
	require.Panics(t, func() { AppendSettings(nil, true, Setting{SettingEnablePush, 0}) })
}
