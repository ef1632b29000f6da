package h2

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func requireNoAllocs(t *testing.T, name string, fn func()) {
	t.Helper()
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	require.Zero(t, testing.AllocsPerRun(200, fn), name)
}

func TestParseAllocs(t *testing.T) {
	payload := make([]byte, 16384)
	dataFrame := AppendData(nil, 1, false, payload)
	padded := AppendDataPadded(nil, 1, true, payload[:1000], 100)
	settings := AppendSettings(nil, false,
		Setting{SettingHeaderTableSize, 4096}, Setting{SettingEnablePush, 0},
		Setting{SettingMaxConcurrentStreams, 100}, Setting{SettingInitialWindowSize, 1 << 20},
		Setting{SettingMaxFrameSize, 1 << 14}, Setting{SettingMaxHeaderListSize, 1 << 16})
	wu := AppendWindowUpdate(nil, 3, 1<<16)
	headers := AppendHeadersPriority(nil, 1, true, true, PriorityParam{StreamDep: 0, Weight: 255}, payload[:200])
	var stream []byte
	for _, b := range allFrames() {
		stream = append(stream, b...)
	}
	var p Parser
	var sink uint64

	requireNoAllocs(t, "DATA", func() {
		f, n, err := p.Next(dataFrame)
		d, err2 := f.Data()
		if err != nil || err2 != nil || n != len(dataFrame) {
			panic("bad")
		}
		sink += uint64(len(d))
	})
	requireNoAllocs(t, "DATA padded", func() {
		f, _, _ := p.Next(padded)
		d, _ := f.Data()
		sink += uint64(len(d))
	})
	requireNoAllocs(t, "SETTINGS", func() {
		f, _, err := p.Next(settings)
		if err != nil {
			panic(err)
		}
		var sum uint32
		_ = f.Settings(func(id SettingID, v uint32) error {
			sum += v
			return nil
		})
		sink += uint64(sum)
	})
	requireNoAllocs(t, "WINDOW_UPDATE", func() {
		f, _, _ := p.Next(wu)
		inc, _ := f.WindowUpdate()
		sink += uint64(inc)
	})
	requireNoAllocs(t, "HEADERS", func() {
		f, _, _ := p.Next(headers)
		h, _ := f.Headers()
		sink += uint64(len(h.Fragment))
	})
	requireNoAllocs(t, "every frame type", func() {
		for b := stream; len(b) > 0; {
			f, n, err := p.Next(b)
			if err != nil || n == 0 {
				panic("bad stream")
			}
			sink += uint64(f.Length)
			b = b[n:]
		}
	})
	badPing := raw(FramePing, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)
	requireNoAllocs(t, "connection error", func() {
		_, _, err := p.Next(badPing)
		if err == nil {
			panic("want error")
		}
	})
	_ = sink
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 64<<10)
	data := make([]byte, 16384)
	frag := make([]byte, 100)
	settings := []Setting{{SettingMaxConcurrentStreams, 100}, {SettingInitialWindowSize, 1 << 20}}
	prio := PriorityParam{StreamDep: 1, Weight: 10}
	requireNoAllocs(t, "Append*", func() {
		b := buf[:0]
		b = AppendFrameHeader(b, FrameHeader{Length: 0, Type: FrameSettings, Flags: FlagAck})
		b = AppendData(b, 1, true, data)
		b = AppendDataPadded(b, 1, true, data[:100], 7)
		b = AppendHeaders(b, 1, false, false, frag)
		b = AppendHeadersPriority(b, 3, true, true, prio, frag)
		b = AppendContinuation(b, 1, true, frag)
		b = AppendPushPromise(b, 1, 2, true, frag)
		b = AppendSettings(b, false, settings...)
		b = AppendSettings(b, true)
		b = AppendSettingsAck(b)
		b = AppendSettingsHeader(b, 1)
		b = AppendSetting(b, SettingEnablePush, 0)
		b = AppendPing(b, true, [8]byte{1, 2, 3})
		b = AppendGoAway(b, 7, ErrCodeNo, frag)
		b = AppendRSTStream(b, 1, ErrCodeCancel)
		b = AppendWindowUpdate(b, 0, 1<<20)
		b = AppendPriority(b, 5, prio)
		if &b[0] != &buf[:1][0] {
			panic("reallocated")
		}
	})
}

func TestValidateAllocs(t *testing.T) {
	resp := []HeaderField{hf(":status", "200"), hf("content-type", "text/html"), hf("content-length", "42")}
	requireNoAllocs(t, "ValidateRequest", func() {
		if ValidateRequest(browserRequest) != nil || ValidateResponse(resp) != nil || ValidateTrailers(resp[1:]) != nil {
			panic("invalid")
		}
	})
	bad := []HeaderField{hf(":method", "GET"), hf("Upper", "x")}
	requireNoAllocs(t, "ValidateRequest error", func() {
		if ValidateRequest(bad) == nil {
			panic("valid")
		}
	})
}

func TestDecodeAllocs(t *testing.T) {
	// A block of indexed references allocates nothing: the strings come
	// from the tables. Literals allocate inside hpack only.
	enc := NewEncoder()
	block := enc.Append(nil, browserRequest...)
	d := NewDecoder(DefaultHeaderTableSize, 0)
	dst := make([]HeaderField, 0, 32)
	_, err := d.Decode(dst, block)
	require.NoError(t, err)
	warm := enc.Append(nil, browserRequest...) // all indexed now
	requireNoAllocs(t, "Decode indexed", func() {
		out, err := d.Decode(dst[:0], warm)
		if err != nil || len(out) != len(browserRequest) {
			panic(err)
		}
	})
	static := dehex("828784") // :method GET, :scheme https, :path /
	requireNoAllocs(t, "Decode static", func() {
		if _, err := d.Decode(dst[:0], static); err != nil {
			panic(err)
		}
	})
}
