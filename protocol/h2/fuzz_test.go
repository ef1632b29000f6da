package h2

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// callAccessors runs every accessor on f, whatever its type: none may
// panic, and views they return lie within the payload.
func callAccessors(t *testing.T, f *Frame) {
	within := func(s []byte) {
		if len(s) == 0 {
			return
		}
		// s must be a sub-slice of f.Payload.
		start := cap(f.Payload) - cap(s)
		require.True(t, start >= 0 && start+len(s) <= len(f.Payload), "view outside the payload")
		require.Same(t, &f.Payload[start], &s[0])
	}
	d, _ := f.Data()
	within(d)
	h, _ := f.Headers()
	within(h.Fragment)
	_, _ = f.Priority()
	_, _ = f.RSTStream()
	_ = f.Settings(func(SettingID, uint32) error { return nil })
	for i := 0; i < f.NumSettings() && f.Validate() == nil; i++ {
		_ = f.SettingAt(i)
	}
	pp, _ := f.PushPromise()
	within(pp.Fragment)
	_, _ = f.Ping()
	_, _, debug, _ := f.GoAway()
	within(debug)
	_, _ = f.WindowUpdate()
	c, _, _ := f.Continuation()
	within(c)
	_ = f.IsAck()
	_ = f.EndStream()
}

// checkTypedAccessor checks that the accessor of a valid frame's type
// succeeds, and that re-encoding it with the Append functions gives the
// same frame back when the encoding is canonical.
func checkTypedAccessor(t *testing.T, f *Frame, rawFrame []byte) {
	var re []byte
	switch f.Type {
	case FrameData:
		d, err := f.Data()
		require.NoError(t, err)
		if f.Flags&^FlagEndStream == 0 {
			re = AppendData(nil, f.StreamID, f.EndStream(), d)
		}
	case FrameHeaders:
		h, err := f.Headers()
		require.NoError(t, err)
		if f.Flags&^(FlagEndStream|FlagEndHeaders) == 0 {
			re = AppendHeaders(nil, f.StreamID, h.EndStream, h.EndHeaders, h.Fragment)
		}
	case FramePriority:
		p, err := f.Priority()
		require.NoError(t, err)
		if f.Flags == 0 {
			re = AppendPriority(nil, f.StreamID, p)
		}
	case FrameRSTStream:
		c, err := f.RSTStream()
		require.NoError(t, err)
		if f.Flags == 0 {
			re = AppendRSTStream(nil, f.StreamID, c)
		}
	case FrameSettings:
		var s []Setting
		require.NoError(t, f.Settings(func(id SettingID, v uint32) error { s = append(s, Setting{id, v}); return nil }))
		require.Len(t, s, f.NumSettings())
		if f.Flags == 0 {
			re = AppendSettings(nil, false, s...)
		} else if f.Flags == FlagAck {
			re = AppendSettingsAck(nil)
		}
	case FramePushPromise:
		pp, err := f.PushPromise()
		require.NoError(t, err)
		if f.Flags&^FlagEndHeaders == 0 && rawFrame[9]&0x80 == 0 {
			re = AppendPushPromise(nil, f.StreamID, pp.PromisedID, pp.EndHeaders, pp.Fragment)
		}
	case FramePing:
		d, err := f.Ping()
		require.NoError(t, err)
		if f.Flags&^FlagAck == 0 {
			re = AppendPing(nil, f.IsAck(), d)
		}
	case FrameGoAway:
		last, code, debug, err := f.GoAway()
		require.NoError(t, err)
		if f.Flags == 0 && rawFrame[9]&0x80 == 0 {
			re = AppendGoAway(nil, last, code, debug)
		}
	case FrameWindowUpdate:
		inc, err := f.WindowUpdate()
		require.NoError(t, err)
		require.NotZero(t, inc)
		if f.Flags == 0 && rawFrame[9]&0x80 == 0 {
			re = AppendWindowUpdate(nil, f.StreamID, inc)
		}
	case FrameContinuation:
		c, eh, err := f.Continuation()
		require.NoError(t, err)
		if f.Flags&^FlagEndHeaders == 0 {
			re = AppendContinuation(nil, f.StreamID, eh, c)
		}
	}
	if re != nil && rawFrame[5]&0x80 == 0 {
		require.Equal(t, rawFrame, re, "re-encoded %v", f.Type)
	}
}

func FuzzFrameParser(f *testing.F) {
	for _, b := range allFrames() {
		f.Add(b)
	}
	var all []byte
	for _, b := range allFrames() {
		all = append(all, b...)
	}
	f.Add(all)
	f.Add(raw(FrameHeaders, FlagPadded|FlagPriority|FlagEndHeaders, 3, 3, 0, 0, 0, 1, 16, 0x82, 0, 0, 0))
	f.Add(raw(FrameData, FlagPadded, 1, 200, 'a'))
	f.Add(raw(FrameWindowUpdate, 0, 5, 0, 0, 0, 0))
	f.Add(raw(FrameSettings, 0, 0, 0, 4, 0x80, 0, 0, 0))
	f.Add([]byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Parser
		b := data
		for {
			fr, n, err := p.Next(b)
			require.LessOrEqual(t, n, len(b))
			require.GreaterOrEqual(t, n, 0)
			if n > 0 {
				require.Equal(t, FrameHeaderLen+int(fr.Length), n)
				require.Equal(t, b[FrameHeaderLen:n], fr.Payload)
				// Any shorter prefix is "need more".
				for _, k := range []int{0, FrameHeaderLen - 1, FrameHeaderLen, n - 1} {
					if k >= 0 && k < n {
						_, n2, err2 := p.Next(b[:k])
						require.Zero(t, n2)
						require.NoError(t, err2)
					}
				}
				callAccessors(t, &fr)
				require.Equal(t, err, fr.Validate())
			}
			if err != nil {
				_, sid, conn, ok := Classify(err)
				require.True(t, ok, "unclassified error %v", err)
				if !conn {
					// Stream errors come with the complete frame.
					require.NotZero(t, n)
					require.Equal(t, fr.StreamID, sid)
					b = b[n:]
					continue
				}
				return
			}
			if n == 0 {
				require.True(t, len(b) < FrameHeaderLen || len(b) < FrameHeaderLen+int(uint32(b[0])<<16|uint32(b[1])<<8|uint32(b[2])))
				return
			}
			checkTypedAccessor(t, &fr, b[:n])
			b = b[n:]
		}
	})
}

func FuzzHPACKDecode(f *testing.F) {
	for _, h := range rfc7541C3 {
		f.Add(dehex(h))
	}
	for _, h := range rfc7541C4 {
		f.Add(dehex(h))
	}
	f.Add(NewEncoder().Append(nil, browserRequest...))
	f.Add(NewEncoder().Append(nil, hf(":status", "200"), hf("content-type", "text/html"), HeaderField{Name: "set-cookie", Value: "a=b", Sensitive: true}))
	f.Add(dehex("3fe11f 82"))
	f.Add(dehex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 8 << 10
		d := NewDecoder(DefaultHeaderTableSize, limit)
		// Two blocks through one context: the second sees the table the
		// first left.
		cut := len(data) / 2
		for _, block := range [][]byte{data[:cut], data[cut:]} {
			fields, err := d.Decode(nil, block)
			if err != nil {
				if err != ErrHeaderListTooLarge {
					_, _, conn, ok := Classify(err)
					require.True(t, ok && conn, "%v", err)
				}
				require.Empty(t, fields)
				if err != ErrHeaderListTooLarge {
					return
				}
				continue
			}
			var size uint64
			for _, fld := range fields {
				size += uint64(fld.Size())
			}
			require.LessOrEqual(t, size, uint64(limit))
			for _, v := range []func([]HeaderField) error{ValidateRequest, ValidateResponse, ValidateTrailers} {
				if err := v(fields); err != nil {
					requireStreamErr(t, err, 0, ErrCodeProtocol)
				}
			}
			// Whatever was decoded re-encodes and decodes to the same list.
			block2 := NewEncoder().Append(nil, fields...)
			again, err := NewDecoder(DefaultHeaderTableSize, 0).Decode(nil, block2)
			require.NoError(t, err)
			require.Equal(t, len(fields), len(again))
			for i := range fields {
				require.Equal(t, fields[i], again[i])
			}
		}
	})
}
