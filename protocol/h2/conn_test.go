package h2

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func TestServerConnPreface(t *testing.T) {
	t.Run("settings first", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{InitialWindowSize: 1 << 20, MaxFrameSize: 1 << 15})
		p.drainOutput()
		fs := p.frames()
		require.Len(t, fs, 2)
		sf := fs[0].(*settingsFrame)
		got := sf.Vals
		require.Equal(t, map[http2.SettingID]uint32{
			http2.SettingMaxConcurrentStreams: 100,
			http2.SettingMaxHeaderListSize:    64 << 10,
			http2.SettingInitialWindowSize:    1 << 20,
			http2.SettingMaxFrameSize:         1 << 15,
		}, got)
		wu := fs[1].(*http2.WindowUpdateFrame)
		require.Equal(t, uint32(0), wu.StreamID)
		require.Equal(t, uint32(1<<20-65535), wu.Increment)
	})
	t.Run("preface in pieces", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{})
		for i := 0; i < len(ClientPreface); i++ {
			n, err := p.c.Feed([]byte(ClientPreface[i:i+1]), p.now)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}
		require.NoError(t, p.fr.WriteSettings())
		p.flush()
		require.NoError(t, p.err)
	})
	t.Run("bad preface", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{})
		p.toConn.WriteString("GET / HTTP/1.1\r\n")
		p.flush()
		p.expectGoAway(ErrCodeProtocol)
	})
	t.Run("not SETTINGS first", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{})
		p.toConn.WriteString(ClientPreface)
		require.NoError(t, p.fr.WritePing(false, [8]byte{}))
		p.flush()
		p.expectGoAway(ErrCodeProtocol)
	})
	t.Run("preface already read", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{PrefaceRead: true})
		require.NoError(t, p.fr.WriteSettings())
		p.flush()
		require.NoError(t, p.err)
		p.requireFrame(p.frames(), func(f any) bool { s, ok := f.(*settingsFrame); return ok && s.Ack }, "ACK")
	})
}

func TestServerConnExchange(t *testing.T) {
	p := newPeer(t, ServerConfig{})
	p.h.respond = true
	p.headers(1, p.get("user-agent", "test"), true)
	p.flush()
	require.True(t, p.h.ended[1])
	require.Equal(t, "user-agent", p.h.heads[1][4].Name)
	fs := p.frames()
	require.Equal(t, "200", p.statusOf(fs, 1))
	body, ended := bodyOf(fs, 1)
	require.Equal(t, "ok", string(body))
	require.True(t, ended)
	require.Equal(t, 0, p.c.Streams())
	require.Equal(t, uint64(1), p.c.Stats().StreamsOpened)

	// A POST with a body and trailers.
	p.headers(3, p.post("content-length", "5"), false)
	require.NoError(t, p.fr.WriteData(3, false, []byte("hel")))
	require.NoError(t, p.fr.WriteData(3, false, []byte("lo")))
	require.NoError(t, p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: p.block("x-sum", "1"), EndStream: true, EndHeaders: true}))
	p.flush()
	require.Equal(t, "hello", string(p.h.body[3]))
	require.Equal(t, []HeaderField{{Name: "x-sum", Value: "1"}}, p.h.trailers[3])
	fs = p.frames()
	require.Equal(t, "200", p.statusOf(fs, 3))
}

func TestServerConnResponseHeaders(t *testing.T) {
	p := newPeer(t, ServerConfig{})
	p.headers(1, p.get(), true)
	p.flush()
	// 1xx, then a final head large enough for CONTINUATION, then
	// trailers.
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "103"}, {Name: "link", Value: "</a>"}}, false))
	require.Zero(t, p.c.WriteData(1, []byte("x"), false), "no DATA before the final head")
	require.Equal(t, ErrInvalidHeaders, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "100"}}, true), "1xx cannot end the stream")
	big := strings.Repeat("v", 40000)
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}, {Name: "x-big", Value: big}}, false))
	require.Equal(t, ErrInvalidHeaders, p.c.WriteHeaders(1, []HeaderField{{Name: "x-t", Value: "1"}}, false), "trailers must end the stream")
	require.Equal(t, ErrInvalidHeaders, p.c.WriteHeaders(1, []HeaderField{{Name: "Connection", Value: "close"}}, true))
	require.Equal(t, 2, p.c.WriteData(1, []byte("hi"), false))
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: "x-t", Value: "1"}}, true))
	require.Equal(t, ErrStreamClosed, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}}, true))
	p.drainOutput()
	fs := p.frames()
	var kinds []string
	var block []byte
	var heads [][]string
	for _, f := range fs {
		switch f := f.(type) {
		case *headersFrame:
			kinds = append(kinds, "H")
			block = append(block[:0], f.Frag...)
			if f.EndHeaders {
				heads = append(heads, names(p.decode(block)))
			}
		case *contFrame:
			kinds = append(kinds, "C")
			require.LessOrEqual(t, len(f.Frag), 16384)
			block = append(block, f.Frag...)
			if f.EndHeaders {
				heads = append(heads, names(p.decode(block)))
			}
		case *dataFrame:
			kinds = append(kinds, "D")
		}
	}
	require.Equal(t, []string{"H", "H", "C", "C", "D", "H"}, kinds)
	require.Equal(t, [][]string{{":status", "link"}, {":status", "x-big"}, {"x-t"}}, heads)
	require.Equal(t, 0, p.c.Streams())
}

func names(fs []hpack.HeaderField) []string {
	var n []string
	for _, f := range fs {
		n = append(n, f.Name)
	}
	return n
}

func TestServerConnStreamStates(t *testing.T) {
	type step func(p *peer)
	open := func(id uint32, end bool) step {
		return func(p *peer) { p.headers(id, p.post(), end) }
	}
	cases := []struct {
		name  string
		steps []step
		rst   uint32 // expected RST_STREAM stream, or 0 for GOAWAY
		code  ErrCode
	}{
		{"idle DATA", []step{func(p *peer) { p.fr.WriteData(1, true, []byte("x")) }}, 0, ErrCodeProtocol},
		{"idle RST_STREAM", []step{func(p *peer) { p.fr.WriteRSTStream(1, http2.ErrCodeCancel) }}, 0, ErrCodeProtocol},
		{"idle WINDOW_UPDATE", []step{func(p *peer) { p.fr.WriteWindowUpdate(1, 1) }}, 0, ErrCodeProtocol},
		{"idle CONTINUATION", []step{func(p *peer) { p.fr.WriteContinuation(1, true, p.get()) }}, 0, ErrCodeProtocol},
		{"even stream", []step{open(2, true)}, 0, ErrCodeProtocol},
		{"smaller id", []step{open(5, false), open(3, false)}, 0, ErrCodeProtocol},
		{"half-closed DATA", []step{open(1, true), func(p *peer) { p.fr.WriteData(1, true, []byte("x")) }}, 1, ErrCodeStreamClosed},
		{"half-closed HEADERS", []step{open(1, true), open(1, true)}, 1, ErrCodeStreamClosed},
		{"half-closed CONTINUATION", []step{open(1, true), func(p *peer) { p.fr.WriteContinuation(1, true, p.get()) }}, 0, ErrCodeProtocol},
		{"DATA after client RST", []step{open(1, false), func(p *peer) { p.fr.WriteRSTStream(1, http2.ErrCodeCancel); p.fr.WriteData(1, true, []byte("x")) }}, 1, ErrCodeStreamClosed},
		{"HEADERS after client RST", []step{open(1, false), func(p *peer) { p.fr.WriteRSTStream(1, http2.ErrCodeCancel) }, open(1, true)}, 1, ErrCodeStreamClosed},
		{"second HEADERS without END_STREAM", []step{open(1, false), open(1, false)}, 1, ErrCodeProtocol},
		{"trailers with pseudo-header", []step{open(1, false), open(1, true)}, 1, ErrCodeProtocol},
		{"PUSH_PROMISE", []step{open(1, false), func(p *peer) {
			p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: p.get(), EndHeaders: true})
		}}, 0, ErrCodeProtocol},
		{"WINDOW_UPDATE 0 on a stream", []step{open(1, false), func(p *peer) { p.fr.WriteWindowUpdate(1, 0) }}, 1, ErrCodeProtocol},
		{"WINDOW_UPDATE 0 on the connection", []step{func(p *peer) { p.fr.WriteWindowUpdate(0, 0) }}, 0, ErrCodeProtocol},
		{"HEADERS depending on itself", []step{func(p *peer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.get(), EndStream: true, EndHeaders: true, Priority: http2.PriorityParam{StreamDep: 1, Weight: 1}})
		}}, 1, ErrCodeProtocol},
		{"PRIORITY depending on itself", []step{func(p *peer) { p.fr.WritePriority(3, http2.PriorityParam{StreamDep: 3}) }}, 3, ErrCodeProtocol},
		{"malformed request", []step{func(p *peer) { p.headers(1, p.block(":method", "GET", ":path", "/"), true) }}, 1, ErrCodeProtocol},
		{"uppercase field", []step{func(p *peer) { p.headers(1, p.get("X-Up", "1"), true) }}, 1, ErrCodeProtocol},
		{"content-length too small", []step{func(p *peer) {
			p.headers(1, p.post("content-length", "1"), false)
			p.fr.WriteData(1, true, []byte("xx"))
		}}, 1, ErrCodeProtocol},
		{"content-length too large", []step{func(p *peer) {
			p.headers(1, p.post("content-length", "3"), false)
			p.fr.WriteData(1, false, []byte("x"))
			p.fr.WriteData(1, true, []byte("x"))
		}}, 1, ErrCodeProtocol},
		{"content-length with END_STREAM on HEADERS", []step{func(p *peer) { p.headers(1, p.post("content-length", "3"), true) }}, 1, ErrCodeProtocol},
		{"interleaved field block", []step{func(p *peer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.get(), EndStream: true})
			p.fr.WritePing(false, [8]byte{})
		}}, 0, ErrCodeProtocol},
		{"CONTINUATION on another stream", []step{func(p *peer) {
			p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.get(), EndStream: true})
			p.fr.WriteContinuation(3, true, nil)
		}}, 0, ErrCodeProtocol},
		{"HPACK garbage", []step{func(p *peer) { p.headers(1, []byte{0xff, 0xff, 0xff, 0xff}, true) }}, 0, ErrCodeCompression},
		{"DATA above MAX_FRAME_SIZE", []step{open(1, false), func(p *peer) { p.fr.WriteData(1, true, make([]byte, 1<<15+1)) }}, 0, ErrCodeFrameSize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, ServerConfig{MaxFrameSize: 1 << 15})
			for _, s := range tc.steps {
				s(p)
				p.flush()
			}
			if tc.rst == 0 {
				p.expectGoAway(tc.code)
				require.Equal(t, uint64(1), p.c.Stats().ConnErrors[tc.code])
				return
			}
			p.expectRST(tc.rst, tc.code)
			if _, ok := p.h.heads[tc.rst]; ok && tc.name != "HEADERS after client RST" && tc.name != "DATA after client RST" {
				require.Equal(t, tc.code, p.h.resets[tc.rst], "handler told of the reset")
			}
			require.Equal(t, 0, p.c.Streams())
		})
	}
}

func TestServerConnClosedStreams(t *testing.T) {
	t.Run("closed after END_STREAM", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.h.respond = true
		p.headers(1, p.get(), true)
		p.flush()
		require.Equal(t, 0, p.c.Streams())
		// Late WINDOW_UPDATE and RST_STREAM are fine (§5.1), PRIORITY too.
		p.fr.WriteWindowUpdate(1, 100)
		p.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		p.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0})
		p.flush()
		require.NoError(t, p.err)
		p.frames()
		p.fr.WriteData(1, true, []byte("x"))
		p.flush()
		p.expectGoAway(ErrCodeStreamClosed)
	})
	t.Run("HEADERS after END_STREAM", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.h.respond = true
		p.headers(1, p.get(), true)
		p.headers(1, p.get(), true)
		p.flush()
		p.expectGoAway(ErrCodeStreamClosed)
	})
	t.Run("frames after our reset are ignored", func(t *testing.T) {
		p := newPeer(t, ServerConfig{ConnWindowSize: 65535})
		p.headers(1, p.post(), false)
		p.flush()
		p.c.Reset(1, ErrCodeCancel)
		p.drainOutput()
		p.expectRST(1, ErrCodeCancel)
		_, told := p.h.resets[1]
		require.False(t, told, "the handler reset it itself")
		// In flight when we reset: ignored, but the connection window
		// still gets its octets back (§6.9).
		for i := 0; i < 4; i++ {
			require.NoError(t, p.fr.WriteData(1, false, make([]byte, 16000)))
		}
		p.headers(1, p.post(), true)
		p.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		p.flush()
		require.NoError(t, p.err)
		fs := p.frames()
		wu := p.requireFrame(fs, func(f any) bool { w, ok := f.(*http2.WindowUpdateFrame); return ok && w.StreamID == 0 }, "conn WINDOW_UPDATE")
		require.GreaterOrEqual(t, wu.(*http2.WindowUpdateFrame).Increment, uint32(32000))
		for _, f := range fs {
			_, isRST := f.(*http2.RSTStreamFrame)
			require.False(t, isRST, describe(fs))
		}
	})
	t.Run("HPACK stays in sync across refused streams", func(t *testing.T) {
		p := newPeer(t, ServerConfig{MaxConcurrentStreams: 1})
		p.headers(1, p.post(), false)
		// Stream 3 is refused, but its block adds to the dynamic table,
		// which stream 5 relies on.
		p.headers(3, p.post("x-indexed", "value-3"), false)
		p.flush()
		p.expectRST(3, ErrCodeRefusedStream)
		require.Equal(t, uint64(1), p.c.Stats().StreamsRefused)
		p.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		p.headers(5, p.post("x-indexed", "value-3"), true)
		p.flush()
		require.NoError(t, p.err)
		require.Equal(t, "value-3", p.h.heads[5][4].Value)
	})
}

func TestServerConnContinuation(t *testing.T) {
	p := newPeer(t, ServerConfig{})
	block := p.get("x-a", strings.Repeat("a", 3000), "x-b", "b")
	require.NoError(t, p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:10], EndStream: true}))
	require.NoError(t, p.fr.WriteContinuation(1, false, block[10:20]))
	require.NoError(t, p.fr.WriteContinuation(1, false, nil))
	require.NoError(t, p.fr.WriteContinuation(1, true, block[20:]))
	p.flush()
	require.NoError(t, p.err)
	require.Len(t, p.h.heads[1], 6)
	require.True(t, p.h.ended[1])
}

func TestServerConnHeaderListTooLarge(t *testing.T) {
	p := newPeer(t, ServerConfig{MaxHeaderListSize: 1024})
	p.headers(1, p.post("x-big", strings.Repeat("x", 2000)), false)
	p.flush()
	fs := p.frames()
	require.Equal(t, "431", p.statusOf(fs, 1))
	p.requireFrame(fs, func(f any) bool { r, ok := f.(*http2.RSTStreamFrame); return ok && r.ErrCode == http2.ErrCodeNo }, "RST_STREAM(NO_ERROR)")
	require.Empty(t, p.h.heads)
	require.Equal(t, uint64(1), p.c.Stats().HeadersTooLarge)
	// The connection goes on, HPACK in sync.
	p.h.respond = true
	p.headers(3, p.get(), true)
	p.flush()
	require.Equal(t, "200", p.statusOf(p.frames(), 3))
}

func TestServerConnFlowControlReceive(t *testing.T) {
	t.Run("stream window restored only on Consumed", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.h.consume = false
		p.headers(1, p.post(), false)
		for i := 0; i < 4; i++ {
			require.NoError(t, p.fr.WriteData(1, false, make([]byte, 16383)))
		}
		require.NoError(t, p.fr.WriteData(1, false, make([]byte, 3))) // 65535 in all
		p.flush()
		require.NoError(t, p.err)
		require.Len(t, p.h.body[1], 65535)
		for _, f := range p.frames() {
			_, ok := f.(*http2.WindowUpdateFrame)
			require.False(t, ok, "no WINDOW_UPDATE before Consumed")
		}
		p.c.Consumed(1, 40000)
		p.drainOutput()
		fs := p.frames()
		wu := p.requireFrame(fs, func(f any) bool { w, ok := f.(*http2.WindowUpdateFrame); return ok && w.StreamID == 1 }, "stream WINDOW_UPDATE")
		require.Equal(t, uint32(40000), wu.(*http2.WindowUpdateFrame).Increment)
		// One more octet than the window allows.
		require.NoError(t, p.fr.WriteData(1, false, make([]byte, 16384)))
		require.NoError(t, p.fr.WriteData(1, false, make([]byte, 16384)))
		require.NoError(t, p.fr.WriteData(1, false, make([]byte, 7233)))
		p.flush()
		p.expectRST(1, ErrCodeFlowControl)
		require.Equal(t, ErrCodeFlowControl, p.h.resets[1])
	})
	t.Run("padding counts and is given back", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.h.consume = false
		p.headers(1, p.post(), false)
		require.NoError(t, p.fr.WriteDataPadded(1, false, make([]byte, 100), make([]byte, 200)))
		p.flush()
		require.Len(t, p.h.body[1], 100)
		st := p.c.find(1)
		require.Equal(t, int64(65535-301), st.recvWindow)
		require.Equal(t, int64(201), st.unacked)
	})
	t.Run("connection window", func(t *testing.T) {
		p := newPeer(t, ServerConfig{ConnWindowSize: 65535, InitialWindowSize: 1 << 20})
		p.h.consume = false
		for id := uint32(1); id <= 5; id += 2 {
			p.headers(id, p.post(), false)
		}
		for _, id := range []uint32{1, 3, 5, 1} {
			require.NoError(t, p.fr.WriteData(id, false, make([]byte, 16384)))
		}
		p.flush()
		p.expectGoAway(ErrCodeFlowControl)
		require.Equal(t, ErrCodeFlowControl, p.h.resets[1], "open streams are told")
	})
	t.Run("our window applies after the ACK", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{InitialWindowSize: 1000})
		p.h.consume = false
		p.toConn.WriteString(ClientPreface)
		p.fr.WriteSettings()
		p.headers(1, p.post(), false)
		// Before our SETTINGS is acknowledged the client may use 65535.
		p.fr.WriteData(1, false, make([]byte, 5000))
		p.flush()
		require.NoError(t, p.err)
		p.fr.WriteSettingsAck()
		p.fr.WriteData(1, false, make([]byte, 1))
		p.flush()
		p.expectRST(1, ErrCodeFlowControl)
	})
}

func TestServerConnFlowControlSend(t *testing.T) {
	p := newPeer(t, ServerConfig{MaxOutput: 1 << 20})
	p.headers(1, p.get(), true)
	p.flush()
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}}, false))
	body := bytes.Repeat([]byte("abcdefgh"), 25000) // 200000
	require.Equal(t, 65535, p.c.SendWindow(1))
	n := p.c.WriteData(1, body, true)
	require.Equal(t, 65535, n, "stream and connection windows")
	require.Equal(t, 0, p.c.SendWindow(1))
	p.drainOutput()
	fs := p.frames()
	got, ended := bodyOf(fs, 1)
	require.False(t, ended)
	require.Len(t, got, 65535)
	for _, f := range fs {
		if d, ok := f.(*dataFrame); ok {
			require.LessOrEqual(t, len(d.Data), 16384)
		}
	}
	// Open the stream window only: still blocked by the connection's.
	p.fr.WriteWindowUpdate(1, 100000)
	p.flush()
	require.Empty(t, p.h.writable)
	// The client allows bigger frames, and opens the connection.
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	p.fr.WriteWindowUpdate(0, 200000)
	p.flush()
	require.Equal(t, []uint32{1}, p.h.writable)
	n2 := p.c.WriteData(1, body[n:], true)
	require.Equal(t, 100000, n2, "the stream window")
	p.fr.WriteWindowUpdate(1, 100000)
	p.flush()
	require.Equal(t, []uint32{1, 1}, p.h.writable)
	require.Equal(t, len(body)-n-n2, p.c.WriteData(1, body[n+n2:], true))
	p.drainOutput()
	fs = p.frames()
	got2, ended := bodyOf(fs, 1)
	require.True(t, ended)
	require.Equal(t, body, append(got, got2...))
	require.Equal(t, 0, p.c.Streams())
	var sizes []int
	for _, f := range fs {
		if d, ok := f.(*dataFrame); ok {
			sizes = append(sizes, len(d.Data))
		}
	}
	require.Equal(t, []int{100000, len(body) - n - n2}, sizes, "frames cut at the client's MAX_FRAME_SIZE")
}

func TestServerConnMaxOutput(t *testing.T) {
	p := newPeer(t, ServerConfig{MaxOutput: 20000})
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	p.fr.WriteWindowUpdate(0, 1<<30)
	p.headers(1, p.get(), true)
	p.flush()
	p.frames()
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}}, false))
	body := make([]byte, 100000)
	n := p.c.WriteData(1, body, false)
	require.LessOrEqual(t, n, 20000)
	require.Zero(t, p.c.WriteData(1, body[n:], false))
	require.LessOrEqual(t, len(p.c.Output()), 20000+100)
	require.Empty(t, p.h.writable)
	p.drainOutput()
	require.Equal(t, []uint32{1}, p.h.writable, "StreamWritable once the output drains")
}

func TestServerConnSettings(t *testing.T) {
	t.Run("INITIAL_WINDOW_SIZE applies to open streams", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.headers(1, p.get(), true)
		p.flush()
		require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}}, false))
		require.Equal(t, 1000, p.c.WriteData(1, make([]byte, 1000), false))
		// Several values in one frame: applied in order (§6.5.3).
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 500})
		p.flush()
		require.Zero(t, p.c.SendWindow(1), "window is 500-1000 < 0")
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1500})
		p.flush()
		require.Equal(t, 500, p.c.SendWindow(1))
		require.Equal(t, []uint32{1}, p.h.writable)
	})
	t.Run("INITIAL_WINDOW_SIZE overflow", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.headers(1, p.get(), true)
		p.fr.WriteWindowUpdate(1, MaxWindowSize-65535)
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65536})
		p.flush()
		p.expectGoAway(ErrCodeFlowControl)
	})
	t.Run("window overflow", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.headers(1, p.get(), true)
		p.fr.WriteWindowUpdate(1, MaxWindowSize-65535)
		p.fr.WriteWindowUpdate(1, 1)
		p.flush()
		p.expectRST(1, ErrCodeFlowControl)
		p.fr.WriteWindowUpdate(0, MaxWindowSize-65535)
		p.fr.WriteWindowUpdate(0, 1)
		p.flush()
		p.expectGoAway(ErrCodeFlowControl)
	})
	t.Run("HEADER_TABLE_SIZE", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		p.headers(1, p.get(), true)
		p.flush()
		require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}, {Name: "x-custom", Value: "v"}}, true))
		p.drainOutput()
		fs := p.frames()
		h := p.requireFrame(fs, func(f any) bool { _, ok := f.(*headersFrame); return ok }, "HEADERS").(*headersFrame)
		p.dec.SetAllowedMaxDynamicTableSize(0)
		_, err := p.dec.DecodeFull(h.Frag)
		require.NoError(t, err, "a table-size update to 0 and no indexing")
		require.Equal(t, byte(0x20), h.Frag[0], "block starts with a size update to 0 (RFC 7541 §6.3)")
	})
	t.Run("our MAX_FRAME_SIZE after the ACK", func(t *testing.T) {
		p := newPeer(t, ServerConfig{MaxFrameSize: 1 << 15})
		p.headers(1, p.post(), false)
		p.fr.WriteData(1, true, make([]byte, 20000))
		p.flush()
		require.NoError(t, p.err)
		require.Len(t, p.h.body[1], 20000)
	})
	t.Run("unknown settings and frames ignored", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.fr.WriteSettings(http2.Setting{ID: 0x99, Val: 7}, http2.Setting{ID: http2.SettingEnablePush, Val: 1})
		p.fr.WriteRawFrame(0xee, 0xff, 0, []byte("whatever"))
		p.fr.WriteRawFrame(0xee, 0, 1, nil)
		p.fr.WritePriority(7, http2.PriorityParam{StreamDep: 1, Weight: 3})
		p.h.respond = true
		p.headers(1, p.get(), true)
		p.flush()
		require.NoError(t, p.err)
		require.Equal(t, "200", p.statusOf(p.frames(), 1))
	})
	t.Run("our MAX_FRAME_SIZE only after the ACK", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{MaxFrameSize: 1 << 15})
		p.toConn.WriteString(ClientPreface)
		p.fr.WriteSettings()
		p.headers(1, p.post(), false)
		p.fr.WriteData(1, true, make([]byte, 16385))
		p.flush()
		p.expectGoAway(ErrCodeFrameSize)
	})
	t.Run("timeout", func(t *testing.T) {
		p := newPeerRaw(t, ServerConfig{})
		p.toConn.WriteString(ClientPreface)
		p.fr.WriteSettings()
		p.flush()
		d := p.c.Deadline()
		require.Equal(t, p.now.Add(DefaultSettingsTimeout), d)
		p.c.Timeout(d.Add(-time.Millisecond))
		require.False(t, p.c.Done())
		p.c.Timeout(d)
		p.drainOutput()
		p.err = p.c.Err()
		p.expectGoAway(ErrCodeSettingsTimeout)
	})
}

func TestServerConnPing(t *testing.T) {
	p := newPeer(t, ServerConfig{})
	p.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	p.fr.WritePing(true, [8]byte{9}) // unsolicited ack: ignored
	p.flush()
	fs := p.frames()
	require.Len(t, fs, 1)
	pf := fs[0].(*http2.PingFrame)
	require.True(t, pf.IsAck())
	require.Equal(t, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, pf.Data)
}

func TestServerConnPeerGoAway(t *testing.T) {
	p := newPeer(t, ServerConfig{})
	p.headers(1, p.get(), true)
	p.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	p.flush()
	require.False(t, p.c.Done(), "stream 1 still to answer")
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "204"}}, true))
	require.True(t, p.c.Done())
	p.drainOutput()
	fs := p.frames()
	g := p.requireFrame(fs, func(f any) bool { _, ok := f.(*goAwayFrame); return ok }, "GOAWAY").(*goAwayFrame)
	require.Equal(t, http2.ErrCodeNo, g.Code)
	require.Equal(t, uint32(1), g.Last)
}

func TestServerConnShutdown(t *testing.T) {
	for _, acked := range []bool{true, false} {
		p := newPeer(t, ServerConfig{})
		p.headers(1, p.get(), true)
		p.flush()
		p.c.Shutdown(p.now)
		p.drainOutput()
		fs := p.frames()
		require.Len(t, fs, 2, describe(fs))
		g := fs[0].(*goAwayFrame)
		require.Equal(t, uint32(1<<31-1), g.Last)
		ping := fs[1].(*http2.PingFrame)
		require.False(t, ping.IsAck())
		// A request already in flight is still served.
		p.headers(3, p.get(), true)
		if acked {
			p.fr.WritePing(true, ping.Data)
			p.flush()
		} else {
			p.flush()
			require.Equal(t, p.now.Add(time.Second), p.c.Deadline())
			p.now = p.now.Add(time.Second)
			p.c.Timeout(p.now)
			p.drainOutput()
		}
		fs = p.frames()
		g = p.requireFrame(fs, func(f any) bool { _, ok := f.(*goAwayFrame); return ok }, "final GOAWAY").(*goAwayFrame)
		require.Equal(t, uint32(3), g.Last)
		// Later streams are ignored.
		p.headers(5, p.get(), true)
		p.flush()
		require.NotContains(t, p.h.heads, uint32(5))
		require.Equal(t, 2, p.c.Streams())
		for _, id := range []uint32{1, 3} {
			require.False(t, p.c.Done())
			require.NoError(t, p.c.WriteHeaders(id, []HeaderField{{Name: ":status", Value: "200"}}, true))
		}
		require.True(t, p.c.Done())
		require.Equal(t, uint64(2), p.c.Stats().GoAwaySent)
	}
}

func TestServerConnStall(t *testing.T) {
	p := newPeer(t, ServerConfig{StallTimeout: 5 * time.Second})
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
	p.headers(1, p.get(), true)
	p.flush()
	require.NoError(t, p.c.WriteHeaders(1, []HeaderField{{Name: ":status", Value: "200"}}, false))
	require.Equal(t, 10, p.c.WriteData(1, make([]byte, 100), true))
	require.Equal(t, p.now.Add(5*time.Second), p.c.Deadline())
	p.now = p.now.Add(5 * time.Second)
	p.c.Timeout(p.now)
	p.drainOutput()
	p.expectRST(1, ErrCodeCancel)
	require.Equal(t, ErrCodeCancel, p.h.resets[1])
	require.Equal(t, uint64(1), p.c.Stats().StallResets)
	require.True(t, p.c.Deadline().IsZero())
}

func TestServerConnConcurrency(t *testing.T) {
	p := newPeer(t, ServerConfig{MaxConcurrentStreams: 2})
	p.headers(1, p.get(), true)
	p.headers(3, p.get(), true)
	p.headers(5, p.get(), true)
	p.flush()
	p.expectRST(5, ErrCodeRefusedStream)
	require.Equal(t, 2, p.c.Streams())
	require.NotContains(t, p.h.heads, uint32(5))
}
