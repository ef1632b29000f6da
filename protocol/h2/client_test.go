package h2

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientRecorder records a ClientConn's events.
type clientRecorder struct {
	recorder
	c       *ClientConn
	heads   map[uint32][][]HeaderField // interim heads, then the final one
	onReset func(id uint32)
}

func newClientRecorder() *clientRecorder {
	return &clientRecorder{recorder: newRecorder(), heads: map[uint32][][]HeaderField{}}
}

func (h *clientRecorder) ResponseHeaders(id uint32, fields []HeaderField, endStream, trailers bool) {
	cp := append([]HeaderField(nil), fields...)
	if trailers {
		h.trailers[id] = cp
	} else {
		h.heads[id] = append(h.heads[id], cp)
	}
	if endStream {
		h.ended[id] = true
	}
}

func (h *clientRecorder) ResponseData(id uint32, data []byte, endStream bool) {
	h.data(h.c, id, data)
	if endStream {
		h.ended[id] = true
	}
}

func (h *clientRecorder) StreamReset(id uint32, code ErrCode) {
	h.resets[id] = code
	if h.onReset != nil {
		h.onReset(id)
	}
}

// status returns the :status of the final head of id.
func (h *clientRecorder) status(id uint32) string {
	hs := h.heads[id]
	if len(hs) == 0 {
		return ""
	}
	return hs[len(hs)-1][0].Value
}

// server is a server on a wire to a ClientConn. It decodes the
// requests the client sends as it reads them.
type server struct {
	wire
	c *ClientConn
	h *clientRecorder

	// Requests as the server decoded them, in order (HPACK).
	reqs        map[uint32][]hpack.HeaderField
	reqTrailers map[uint32][]hpack.HeaderField
	reqEnded    map[uint32]bool
	pending     []byte
	pendingID   uint32
	pendingEnd  bool
}

func newServerRaw(t testing.TB, cfg ClientConfig) *server {
	s := &server{h: newClientRecorder(),
		reqs: map[uint32][]hpack.HeaderField{}, reqTrailers: map[uint32][]hpack.HeaderField{}, reqEnded: map[uint32]bool{}}
	s.c = NewClientConn(cfg, s.h)
	s.h.c = s.c
	s.init(t, s.c)
	return s
}

// newServer connects: reads the client preface and SETTINGS, sends its
// own SETTINGS (with settings) and the ACK, reads the client's ACK.
func newServer(t testing.TB, cfg ClientConfig, settings ...http2.Setting) *server {
	s := newServerRaw(t, cfg)
	s.drainOutput()
	require.True(t, bytes.HasPrefix(s.fromConn.Bytes(), []byte(ClientPreface)))
	s.fromConn.Next(len(ClientPreface))
	fs := s.frames()
	require.NotEmpty(t, fs)
	sf, ok := fs[0].(*settingsFrame)
	require.True(t, ok, "first frame %T", fs[0])
	require.False(t, sf.Ack)
	require.NoError(t, s.fr.WriteSettings(settings...))
	require.NoError(t, s.fr.WriteSettingsAck())
	s.flush()
	require.NoError(t, s.err)
	s.requireFrame(s.frames(), func(f any) bool { sf, ok := f.(*settingsFrame); return ok && sf.Ack }, "SETTINGS ACK")
	require.True(t, s.c.Deadline().IsZero())
	return s
}

// frames reads every frame the client has output, draining it first,
// and decodes the requests among them.
func (s *server) frames() []any {
	s.drainOutput()
	fs := s.readFrames()
	for _, f := range fs {
		s.decodeRequests(f)
	}
	return fs
}

// decodeRequests decodes every field block the client sends, in order,
// as a server must (RFC 9113 §4.3).
func (s *server) decodeRequests(f any) {
	switch f := f.(type) {
	case *headersFrame:
		s.pending, s.pendingID, s.pendingEnd = append(s.pending[:0], f.Frag...), f.StreamID, f.End
		if !f.EndHeaders {
			return
		}
	case *contFrame:
		require.Equal(s.t, s.pendingID, f.StreamID)
		s.pending = append(s.pending, f.Frag...)
		if !f.EndHeaders {
			return
		}
	case *dataFrame:
		if f.End {
			s.reqEnded[f.StreamID] = true
		}
		return
	default:
		return
	}
	fields := s.decodeBlock(s.pending)
	if _, ok := s.reqs[s.pendingID]; ok {
		s.reqTrailers[s.pendingID] = fields
	} else {
		s.reqs[s.pendingID] = fields
	}
	if s.pendingEnd {
		s.reqEnded[s.pendingID] = true
	}
}

// expectGoAway checks that the client ended the connection with
// GOAWAY(code) and reported its streams.
func (s *server) expectGoAway(code ErrCode) {
	s.t.Helper()
	s.requireGoAway(s.frames(), code)
	require.True(s.t, s.c.Done())
	var ce ConnectionError
	require.True(s.t, errors.As(s.c.Err(), &ce), "%v", s.c.Err())
	require.Equal(s.t, code, ce.Code)
	require.Equal(s.t, 0, s.c.Streams())
	require.False(s.t, s.c.CanOpen())
}

// expectRST checks that the client reset id with code and told its
// handler, and that the connection goes on.
func (s *server) expectRST(id uint32, code ErrCode) {
	s.t.Helper()
	s.expectRSTFrame(id, code)
	require.Equal(s.t, code, s.h.resets[id])
}

// expectRSTFrame checks that the client sent RST_STREAM(code) on id and
// the connection goes on.
func (s *server) expectRSTFrame(id uint32, code ErrCode) {
	s.t.Helper()
	s.requireRST(s.frames(), id, code)
	require.NoError(s.t, s.err)
	require.False(s.t, s.c.Done())
}

func (s *server) headers(id uint32, endStream bool, fields ...string) {
	require.NoError(s.t, s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: s.block(fields...), EndStream: endStream, EndHeaders: true}))
}

func (s *server) data(id uint32, endStream bool, p string) {
	require.NoError(s.t, s.fr.WriteData(id, endStream, []byte(p)))
}

var (
	getFields  = []HeaderField{hf(":method", "GET"), hf(":scheme", "http"), hf(":authority", "backend"), hf(":path", "/")}
	postFields = []HeaderField{hf(":method", "POST"), hf(":scheme", "http"), hf(":authority", "backend"), hf(":path", "/up")}
	headFields = []HeaderField{hf(":method", "HEAD"), hf(":scheme", "http"), hf(":authority", "backend"), hf(":path", "/")}
)

func (s *server) open(fields []HeaderField, endStream bool) uint32 {
	s.t.Helper()
	id, err := s.c.OpenStream(fields, endStream)
	require.NoError(s.t, err)
	return id
}

// requestOf returns the request head of id and whether the request
// ended, from frames already read.
func (s *server) requestOf(_ []any, id uint32) (head []hpack.HeaderField, ended bool) {
	return s.reqs[id], s.reqEnded[id]
}

func (s *server) decodeBlock(b []byte) []hpack.HeaderField {
	fs, err := s.dec.DecodeFull(b)
	require.NoError(s.t, err)
	return fs
}

func TestClientConnPreface(t *testing.T) {
	t.Run("preface, settings, window", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{MaxFrameSize: 1 << 15})
		s.drainOutput()
		require.Equal(t, ClientPreface, string(s.fromConn.Next(len(ClientPreface))))
		fs := s.frames()
		require.Len(t, fs, 2)
		require.Equal(t, map[http2.SettingID]uint32{
			http2.SettingEnablePush:        0,
			http2.SettingMaxHeaderListSize: 64 << 10,
			http2.SettingInitialWindowSize: 256 << 10,
			http2.SettingMaxFrameSize:      1 << 15,
		}, fs[0].(*settingsFrame).Vals)
		wu := fs[1].(*http2.WindowUpdateFrame)
		require.Equal(t, uint32(0), wu.StreamID)
		require.Equal(t, uint32(1<<20-65535), wu.Increment)
	})
	t.Run("not SETTINGS first", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{})
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		require.NoError(t, s.fr.WritePing(false, [8]byte{}))
		s.flush()
		s.expectGoAway(ErrCodeProtocol)
	})
	t.Run("SETTINGS ACK first", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{})
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		require.NoError(t, s.fr.WriteSettingsAck())
		s.flush()
		s.expectGoAway(ErrCodeProtocol)
	})
	t.Run("ENABLE_PUSH 1", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{})
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		require.NoError(t, s.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 1}))
		s.flush()
		s.expectGoAway(ErrCodeProtocol)
	})
	t.Run("SETTINGS timeout", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{})
		id := s.open(getFields, true)
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		require.NoError(t, s.fr.WriteSettings())
		s.flush()
		require.Equal(t, s.now.Add(DefaultSettingsTimeout), s.c.Deadline())
		s.c.Timeout(s.now.Add(DefaultSettingsTimeout - 1))
		require.False(t, s.c.Done())
		s.c.Timeout(s.now.Add(DefaultSettingsTimeout))
		s.expectGoAway(ErrCodeSettingsTimeout)
		require.Equal(t, ErrCodeSettingsTimeout, s.h.resets[id])
	})
	t.Run("SETTINGS timeout counts the peer's silence", func(t *testing.T) {
		// A peer whose ACK waits behind frames it queued before (a large
		// upload on a slow link) keeps the connection while it sends.
		s := newServerRaw(t, ClientConfig{})
		s.open(getFields, true)
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		require.NoError(t, s.fr.WriteSettings())
		s.flush()
		start := s.now
		for i := 0; i < 3; i++ {
			s.now = s.now.Add(DefaultSettingsTimeout - time.Second)
			require.NoError(t, s.fr.WritePing(false, [8]byte{byte(i)}))
			s.flush()
			s.c.Timeout(s.now)
			require.False(t, s.c.Done(), "a peer that keeps sending is not timed out")
		}
		require.Equal(t, s.now.Add(DefaultSettingsTimeout), s.c.Deadline())
		require.Greater(t, s.now.Sub(start), DefaultSettingsTimeout)
		s.c.Timeout(s.now.Add(DefaultSettingsTimeout))
		s.expectGoAway(ErrCodeSettingsTimeout)
	})
	t.Run("streams before the server's SETTINGS", func(t *testing.T) {
		// §3.4: no need to wait; the server's limit is assumed to be 100.
		s := newServerRaw(t, ClientConfig{MaxConcurrentStreams: 500})
		for i := 0; i < 100; i++ {
			s.open(getFields, true)
		}
		require.False(t, s.c.CanOpen())
		_, err := s.c.OpenStream(getFields, true)
		require.ErrorIs(t, err, ErrNoStream)
	})
}

func TestClientConnExchange(t *testing.T) {
	s := newServer(t, ClientConfig{})
	id := s.open(append(getFields[:4:4], hf("user-agent", "sluice")), true)
	require.Equal(t, uint32(1), id)
	fs := s.frames()
	head, ended := s.requestOf(fs, 1)
	require.True(t, ended)
	require.Equal(t, []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "backend"}, {Name: ":path", Value: "/"}, {Name: "user-agent", Value: "sluice"}}, head)

	s.headers(1, false, ":status", "200", "content-length", "5")
	s.data(1, false, "hel")
	s.data(1, true, "lo")
	s.flush()
	require.NoError(t, s.err)
	require.Equal(t, "200", s.h.status(1))
	require.Equal(t, "hello", string(s.h.body[1]))
	require.True(t, s.h.ended[1])
	require.Equal(t, 0, s.c.Streams())
	require.True(t, s.c.CanOpen())

	// A POST with a body and trailers, the response arriving before the
	// request ends (§8.1): the stream stays until our END_STREAM.
	id = s.open(postFields, false)
	require.Equal(t, uint32(3), id)
	require.Equal(t, 5, s.c.WriteData(id, []byte("abcde"), false))
	s.headers(3, true, ":status", "204")
	s.flush()
	require.True(t, s.h.ended[3])
	require.Equal(t, 1, s.c.Streams())
	require.NoError(t, s.c.WriteTrailers(id, []HeaderField{hf("grpc-status", "0")}))
	require.Equal(t, 0, s.c.Streams())
	fs = s.frames()
	body, _ := bodyOf(fs, 3)
	require.Equal(t, "abcde", string(body))
	require.True(t, s.reqEnded[3])
	require.Equal(t, []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}, s.reqTrailers[3])

	// Writing on a closed stream, invalid requests and trailers.
	require.Equal(t, 0, s.c.WriteData(id, []byte("x"), false))
	require.ErrorIs(t, s.c.WriteTrailers(id, nil), ErrStreamClosed)
	_, err := s.c.OpenStream([]HeaderField{hf(":method", "GET")}, true)
	require.ErrorIs(t, err, ErrInvalidRequest)
	id = s.open(postFields, false)
	require.ErrorIs(t, s.c.WriteTrailers(id, []HeaderField{hf(":status", "200")}), ErrInvalidRequest)
	// An empty DATA with END_STREAM ends the request.
	require.Equal(t, 0, s.c.WriteData(id, nil, true))
	fs = s.frames()
	d := fs[len(fs)-1].(*dataFrame)
	require.True(t, d.End)
	require.Empty(t, d.Data)

	st := s.c.Stats()
	require.Equal(t, uint64(3), st.StreamsOpened)
	require.Zero(t, st.ResetsSent)
}

func TestClientConnInterim(t *testing.T) {
	s := newServer(t, ClientConfig{MaxInterimResponses: 3})
	id := s.open(postFields, false)
	s.headers(id, false, ":status", "100")
	s.headers(id, false, ":status", "103", "link", "</a.css>; rel=preload")
	s.headers(id, false, ":status", "200")
	s.data(id, true, "ok")
	s.flush()
	require.Len(t, s.h.heads[id], 3)
	require.Equal(t, "100", s.h.heads[id][0][0].Value)
	require.Equal(t, "103", s.h.heads[id][1][0].Value)
	require.Equal(t, "200", s.h.status(id))
	require.Equal(t, "ok", string(s.h.body[id]))

	// §8.1: an interim head with END_STREAM is malformed.
	id = s.open(getFields, true)
	s.headers(id, true, ":status", "100")
	s.flush()
	s.expectRST(id, ErrCodeProtocol)

	// More 1xx than MaxInterimResponses.
	id = s.open(getFields, true)
	for i := 0; i < 4; i++ {
		s.headers(id, false, ":status", "103")
	}
	s.flush()
	s.expectRST(id, ErrCodeProtocol)
	require.Len(t, s.h.heads[id], 3)

	// 101 does not exist in HTTP/2 (§8.6).
	id = s.open(getFields, true)
	s.headers(id, false, ":status", "101")
	s.flush()
	s.expectRST(id, ErrCodeProtocol)
}

func TestClientConnTrailers(t *testing.T) {
	s := newServer(t, ClientConfig{})
	id := s.open(postFields, true)
	s.headers(id, false, ":status", "200", "content-type", "application/grpc", "trailer", "grpc-status")
	s.data(id, false, "\x00\x00\x00\x00\x02hi")
	s.headers(id, true, "grpc-status", "0", "grpc-message", "")
	s.flush()
	require.Equal(t, []HeaderField{hf("grpc-status", "0"), hf("grpc-message", "")}, s.h.trailers[id])
	require.True(t, s.h.ended[id])
	require.Equal(t, 0, s.c.Streams())

	cases := map[string][]string{
		"trailers without END_STREAM": nil,
		"pseudo-header in trailers":   {":status", "200"},
		"connection-specific field":   {"connection", "close"},
	}
	for name, trailer := range cases {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, ClientConfig{})
			id := s.open(getFields, true)
			s.headers(id, false, ":status", "200")
			if trailer == nil {
				s.headers(id, false, "x", "y")
			} else {
				s.headers(id, true, trailer...)
			}
			s.flush()
			s.expectRST(id, ErrCodeProtocol)
			require.Nil(t, s.h.trailers[id])
		})
	}
}

func TestClientConnMalformedResponse(t *testing.T) {
	cases := []struct {
		name   string
		method []HeaderField
		frames func(s *server, id uint32)
		ok     bool
	}{
		{"no :status", getFields, func(s *server, id uint32) { s.headers(id, true, "x", "y") }, false},
		{"request pseudo-header", getFields, func(s *server, id uint32) { s.headers(id, true, ":status", "200", ":path", "/") }, false},
		{"uppercase name", getFields, func(s *server, id uint32) { s.headers(id, true, ":status", "200", "X-A", "b") }, false},
		{"DATA before HEADERS", getFields, func(s *server, id uint32) { s.data(id, true, "x") }, false},
		{"content-length exceeded", getFields, func(s *server, id uint32) {
			s.headers(id, false, ":status", "200", "content-length", "2")
			s.data(id, false, "abc")
		}, false},
		{"content-length short", getFields, func(s *server, id uint32) {
			s.headers(id, false, ":status", "200", "content-length", "4")
			s.data(id, true, "abc")
		}, false},
		{"content-length with END_STREAM on HEADERS", getFields, func(s *server, id uint32) {
			s.headers(id, true, ":status", "200", "content-length", "4")
		}, false},
		{"content-length short before trailers", getFields, func(s *server, id uint32) {
			s.headers(id, false, ":status", "200", "content-length", "4")
			s.data(id, false, "abc")
			s.headers(id, true, "x", "y")
		}, false},
		{"bad content-length", getFields, func(s *server, id uint32) { s.headers(id, true, ":status", "200", "content-length", "1x") }, false},
		{"HEAD: content-length, no DATA", headFields, func(s *server, id uint32) {
			s.headers(id, true, ":status", "200", "content-length", "1234")
		}, true},
		{"HEAD: DATA", headFields, func(s *server, id uint32) {
			s.headers(id, false, ":status", "200", "content-length", "3")
			s.data(id, true, "abc")
		}, false},
		{"304 with content-length", getFields, func(s *server, id uint32) {
			s.headers(id, true, ":status", "304", "content-length", "10")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, ClientConfig{})
			id := s.open(tc.method, true)
			tc.frames(s, id)
			s.flush()
			if tc.ok {
				require.NoError(t, s.err)
				require.True(t, s.h.ended[id])
				require.Empty(t, s.h.resets)
				return
			}
			s.expectRST(id, ErrCodeProtocol)
			require.False(t, s.h.ended[id])
			require.Equal(t, uint64(1), s.c.Stats().StreamErrors[ErrCodeProtocol])
			// The connection goes on.
			id = s.open(getFields, true)
			s.headers(id, true, ":status", "200")
			s.flush()
			require.Equal(t, "200", s.h.status(id))
		})
	}
}

func TestClientConnStreamStates(t *testing.T) {
	connErr := []struct {
		name   string
		frames func(s *server)
		code   ErrCode
	}{
		{"DATA on an idle stream", func(s *server) { s.data(3, true, "x") }, ErrCodeProtocol},
		{"HEADERS on an idle stream", func(s *server) { s.headers(5, true, ":status", "200") }, ErrCodeProtocol},
		{"HEADERS on an even stream", func(s *server) { s.headers(2, true, ":status", "200") }, ErrCodeProtocol},
		{"RST_STREAM on an idle stream", func(s *server) { s.fr.WriteRSTStream(3, http2.ErrCodeCancel) }, ErrCodeProtocol},
		{"WINDOW_UPDATE on an idle stream", func(s *server) { s.fr.WriteWindowUpdate(7, 1) }, ErrCodeProtocol},
		{"PRIORITY of bad length on an idle stream", func(s *server) { s.fr.WriteRawFrame(http2.FramePriority, 0, 9, []byte{0, 0, 0}) }, ErrCodeFrameSize},
		{"PUSH_PROMISE", func(s *server) {
			s.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: s.block(":method", "GET"), EndHeaders: true})
		}, ErrCodeProtocol},
		{"DATA after END_STREAM", func(s *server) {
			s.headers(1, true, ":status", "200")
			s.data(1, true, "x")
		}, ErrCodeStreamClosed},
		{"HEADERS after END_STREAM", func(s *server) {
			s.headers(1, true, ":status", "200")
			s.headers(1, true, ":status", "200")
		}, ErrCodeStreamClosed},
		{"CONTINUATION without HEADERS", func(s *server) { s.fr.WriteContinuation(1, true, s.block(":status", "200")) }, ErrCodeProtocol},
		{"frame inside a field block", func(s *server) {
			s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: s.block(":status", "200")})
			s.fr.WritePing(false, [8]byte{})
		}, ErrCodeProtocol},
		{"HPACK garbage", func(s *server) {
			s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff}, EndHeaders: true})
		}, ErrCodeCompression},
		{"frame too large", func(s *server) { s.data(1, false, string(make([]byte, 1<<14+1))) }, ErrCodeFrameSize},
	}
	for _, tc := range connErr {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, ClientConfig{})
			s.open(getFields, true)
			tc.frames(s)
			s.flush()
			s.expectGoAway(tc.code)
			if !s.h.ended[1] {
				require.Equal(t, tc.code, s.h.resets[1])
			}
			require.Equal(t, uint64(1), s.c.Stats().ConnErrors[tc.code])
			// Nothing more is accepted.
			n, err := s.c.Feed(AppendPing(nil, false, [8]byte{}), s.now)
			require.Zero(t, n)
			require.Error(t, err)
			_, err = s.c.OpenStream(getFields, true)
			require.ErrorIs(t, err, ErrConnClosed)
		})
	}

	t.Run("reset by the server, then DATA", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		s.open(getFields, true)
		s.headers(1, false, ":status", "200")
		s.fr.WriteRSTStream(1, http2.ErrCodeInternal)
		s.flush()
		require.Equal(t, ErrCodeInternal, s.h.resets[1])
		require.Equal(t, 0, s.c.Streams())
		s.data(1, false, "late")
		s.flush()
		s.expectRSTFrame(1, ErrCodeStreamClosed)
		// WINDOW_UPDATE, RST_STREAM and PRIORITY on a closed stream are
		// ignored (§5.1).
		s.fr.WriteWindowUpdate(1, 10)
		s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		s.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 1})
		s.flush()
		require.NoError(t, s.err)
		require.Empty(t, s.frames())
	})
	t.Run("reset by us, then frames in flight", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(postFields, false)
		s.c.Reset(id, ErrCodeCancel)
		fs := s.frames()
		r := fs[len(fs)-1].(*http2.RSTStreamFrame)
		require.Equal(t, http2.ErrCodeCancel, r.ErrCode)
		s.headers(id, false, ":status", "200")
		s.data(id, false, string(make([]byte, 16000)))
		s.flush()
		require.NoError(t, s.err)
		require.Empty(t, s.h.heads)
		require.Empty(t, s.h.resets) // Reset is not reported back
		// Dropped octets go back to the connection window: more than
		// 1 MiB in all passes.
		for i := 0; i < 80; i++ {
			s.data(id, false, string(make([]byte, 16000)))
		}
		s.flush()
		require.NoError(t, s.err)
		// A later stream still decodes (HPACK in sync).
		id = s.open(getFields, true)
		s.headers(id, true, ":status", "200", "x-later", "1")
		s.flush()
		require.Equal(t, "1", s.h.heads[id][0][1].Value)
	})
	t.Run("half-closed (remote): more HEADERS", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(postFields, false)
		s.headers(id, true, ":status", "200")
		s.headers(id, true, "x", "y")
		s.flush()
		s.expectRST(id, ErrCodeStreamClosed)
	})
	t.Run("RST_STREAM NO_ERROR after a complete response", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(postFields, false)
		s.headers(id, true, ":status", "413")
		s.fr.WriteRSTStream(id, http2.ErrCodeNo)
		s.flush()
		require.Equal(t, "413", s.h.status(id))
		require.Equal(t, ErrCodeNo, s.h.resets[id])
		require.Equal(t, 0, s.c.WriteData(id, []byte("x"), true))
	})
	t.Run("PRIORITY of bad length on an open stream", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.fr.WriteRawFrame(http2.FramePriority, 0, id, []byte{0, 0, 0})
		s.flush()
		s.expectRST(id, ErrCodeFrameSize)
	})
	t.Run("self-dependent HEADERS", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: s.block(":status", "200", "x-a", "b"), EndHeaders: true, Priority: http2.PriorityParam{StreamDep: id, Weight: 1}})
		s.flush()
		s.expectRST(id, ErrCodeProtocol)
		// The block was decoded: the dynamic table is in sync.
		id = s.open(getFields, true)
		s.headers(id, true, ":status", "200", "x-a", "b")
		s.flush()
		require.Equal(t, []HeaderField{hf(":status", "200"), hf("x-a", "b")}, s.h.heads[id][0])
	})
	t.Run("unknown frames and settings ignored", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.fr.WriteRawFrame(0x10, 0xff, id, []byte("whatever"))
		s.fr.WriteSettings(http2.Setting{ID: 0x99, Val: 7})
		s.headers(id, true, ":status", "200")
		s.flush()
		require.NoError(t, s.err)
		require.Equal(t, "200", s.h.status(id))
	})
}

func TestClientConnContinuation(t *testing.T) {
	s := newServer(t, ClientConfig{})
	// A response head in HEADERS + CONTINUATION frames, some empty.
	id := s.open(getFields, true)
	blk := s.block(":status", "200", "x-long", string(bytes.Repeat([]byte("v"), 40000)))
	s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk[:10000]})
	s.fr.WriteContinuation(id, false, nil)
	s.fr.WriteContinuation(id, false, blk[10000:20000])
	s.fr.WriteContinuation(id, true, blk[20000:])
	s.flush()
	require.NoError(t, s.err)
	require.Equal(t, 40000, len(s.h.heads[id][0][1].Value))

	// Our request head split by the server's MAX_FRAME_SIZE (16384).
	big := append(getFields[:4:4], hf("cookie", string(bytes.Repeat([]byte("c"), 40000))))
	id = s.open(big, true)
	fs := s.frames()
	head, ended := s.requestOf(fs, id)
	require.True(t, ended)
	require.Equal(t, 40000, len(head[4].Value))
	require.IsType(t, &contFrame{}, fs[len(fs)-1])

	t.Run("too many CONTINUATION frames", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: s.block(":status", "200")})
		for i := 0; i < 40; i++ {
			s.fr.WriteContinuation(id, false, nil)
		}
		s.flush()
		s.expectGoAway(ErrCodeEnhanceYourCalm)
		require.Equal(t, uint64(1), s.c.Stats().Floods.Continuation)
	})
	t.Run("block too large", func(t *testing.T) {
		s := newServer(t, ClientConfig{MaxHeaderListSize: 8 << 10})
		id := s.open(getFields, true)
		s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: make([]byte, 10000)})
		s.fr.WriteContinuation(id, false, make([]byte, 10000))
		s.flush()
		s.expectGoAway(ErrCodeEnhanceYourCalm)
		require.Equal(t, uint64(1), s.c.Stats().Floods.Continuation)
	})
}

func TestClientConnHeaderListTooLarge(t *testing.T) {
	s := newServer(t, ClientConfig{MaxHeaderListSize: 4096},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1000})
	id := s.open(getFields, true)
	s.headers(id, false, ":status", "200", "x-big", string(bytes.Repeat([]byte("b"), 5000)), "x-after", "1")
	s.flush()
	s.expectRST(id, ErrCodeProtocol)
	require.Equal(t, uint64(1), s.c.Stats().HeadersTooLarge)
	// The block was decoded in full: x-after, now indexed, still decodes.
	id = s.open(getFields, true)
	s.headers(id, true, ":status", "200", "x-after", "1")
	s.flush()
	require.Equal(t, []HeaderField{hf(":status", "200"), hf("x-after", "1")}, s.h.heads[id][0])

	// A request above the server's MAX_HEADER_LIST_SIZE is refused here.
	_, err := s.c.OpenStream(append(getFields[:4:4], hf("cookie", string(bytes.Repeat([]byte("c"), 1000)))), true)
	require.ErrorIs(t, err, ErrHeaderListTooLarge)
	require.Equal(t, 0, s.c.Streams())
}

func TestClientConnGoAway(t *testing.T) {
	s := newServer(t, ClientConfig{})
	a := s.open(getFields, true)
	b := s.open(postFields, false)
	c := s.open(getFields, true)
	require.Equal(t, []uint32{1, 3, 5}, []uint32{a, b, c})
	s.fr.WriteGoAway(3, http2.ErrCodeNo, []byte("bye"))
	s.flush()
	require.NoError(t, s.err)
	// §6.8: 5 was not processed: refused, retryable elsewhere.
	require.Equal(t, map[uint32]ErrCode{5: ErrCodeRefusedStream}, s.h.resets)
	require.False(t, s.c.CanOpen())
	_, err := s.c.OpenStream(getFields, true)
	require.ErrorIs(t, err, ErrNoStream)
	require.False(t, s.c.Done())
	// A later GOAWAY may lower the last stream id, not raise it.
	s.fr.WriteGoAway(7, http2.ErrCodeNo, nil)
	s.flush()
	require.Equal(t, 2, s.c.Streams())
	// Streams 1 and 3 finish.
	s.headers(a, true, ":status", "200")
	s.headers(b, false, ":status", "200")
	s.data(b, true, "done")
	s.flush()
	require.Equal(t, "done", string(s.h.body[b]))
	require.False(t, s.c.Done())
	require.Equal(t, len("up"), s.c.WriteData(b, []byte("up"), true))
	require.True(t, s.c.Done())
	require.NoError(t, s.c.Err())
	st := s.c.Stats()
	require.Equal(t, uint64(1), st.StreamsRefused)
	require.Equal(t, uint64(2), st.GoAwayReceived)
	n, err := s.c.Feed(AppendPing(nil, false, [8]byte{}), s.now)
	require.Zero(t, n)
	require.ErrorIs(t, err, ErrConnClosed)

	t.Run("lowered", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		s.open(getFields, true)
		s.open(getFields, true)
		s.fr.WriteGoAway(streamIDMask, http2.ErrCodeNo, nil)
		s.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
		s.flush()
		require.Equal(t, map[uint32]ErrCode{3: ErrCodeRefusedStream}, s.h.resets)
		// A late response on the refused stream is ignored.
		s.headers(3, true, ":status", "200")
		s.flush()
		require.NoError(t, s.err)
		require.Empty(t, s.h.heads[3])
	})
	t.Run("idle connection", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		s.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		s.flush()
		require.True(t, s.c.Done())
		require.NoError(t, s.c.Err())
	})
	t.Run("RST_STREAM REFUSED_STREAM", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		s.flush()
		require.Equal(t, ErrCodeRefusedStream, s.h.resets[id])
		require.Equal(t, uint64(1), s.c.Stats().StreamsRefused)
		require.True(t, s.c.CanOpen())
	})
}

func TestClientConnShutdown(t *testing.T) {
	s := newServer(t, ClientConfig{})
	id := s.open(getFields, true)
	s.c.Shutdown(s.now)
	g := s.requireFrame(s.frames(), func(f any) bool { _, ok := f.(*goAwayFrame); return ok }, "GOAWAY").(*goAwayFrame)
	require.Equal(t, http2.ErrCodeNo, g.Code)
	require.Equal(t, uint32(0), g.Last)
	require.False(t, s.c.CanOpen())
	require.False(t, s.c.Done())
	s.headers(id, true, ":status", "200")
	s.flush()
	require.True(t, s.c.Done())
	require.NoError(t, s.c.Err())
	s.c.Close() // the socket closes after a graceful end: still no error
	require.NoError(t, s.c.Err())

	t.Run("silent server", func(t *testing.T) {
		s := newServerRaw(t, ClientConfig{})
		s.drainOutput()
		s.fromConn.Next(len(ClientPreface))
		s.c.Timeout(s.now)
		require.Equal(t, s.now.Add(DefaultSettingsTimeout), s.c.Deadline())
		s.c.Timeout(s.c.Deadline())
		s.expectGoAway(ErrCodeSettingsTimeout)
	})
	t.Run("Close", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		a := s.open(getFields, true)
		b := s.open(getFields, true)
		s.c.Close()
		require.Equal(t, map[uint32]ErrCode{a: ErrCodeCancel, b: ErrCodeCancel}, s.h.resets)
		require.True(t, s.c.Done())
		require.ErrorIs(t, s.c.Err(), ErrConnClosed)
	})
}

func TestClientConnConcurrency(t *testing.T) {
	s := newServer(t, ClientConfig{MaxConcurrentStreams: 3},
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 2})
	a := s.open(getFields, true)
	s.open(getFields, true)
	require.False(t, s.c.CanOpen())
	s.headers(a, true, ":status", "200")
	s.flush()
	require.True(t, s.c.CanOpen())
	s.open(getFields, true)
	// The server raises its limit: ours (3) binds.
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1000})
	s.flush()
	s.open(getFields, true)
	require.False(t, s.c.CanOpen())
	// Lowered below the open count: open streams go on, none is added.
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 0})
	s.flush()
	require.Equal(t, 3, s.c.Streams())
	require.False(t, s.c.CanOpen())

	t.Run("stream ids exhausted", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		s.c.nextID = streamIDMask - 2
		require.Equal(t, uint32(streamIDMask-2), s.open(getFields, true))
		require.Equal(t, uint32(streamIDMask), s.open(getFields, true))
		require.False(t, s.c.CanOpen())
		_, err := s.c.OpenStream(getFields, true)
		require.ErrorIs(t, err, ErrNoStream)
		s.headers(streamIDMask, true, ":status", "200")
		s.flush()
		require.Equal(t, "200", s.h.status(streamIDMask))
		require.False(t, s.c.CanOpen())
	})
}

func TestClientConnFlowControlSend(t *testing.T) {
	s := newServer(t, ClientConfig{MaxOutput: 1 << 20})
	id := s.open(postFields, false)
	body := make([]byte, 200000)
	// §6.9.2: the initial windows are 65535, stream and connection.
	require.Equal(t, 65535, s.c.SendWindow(id))
	n := s.c.WriteData(id, body, true)
	require.Equal(t, 65535, n)
	require.Equal(t, 0, s.c.SendWindow(id))
	fs := s.frames()
	for _, f := range fs {
		if d, ok := f.(*dataFrame); ok {
			require.LessOrEqual(t, len(d.Data), 16384)
			require.False(t, d.End)
		}
	}
	// The stream window opens: the connection window still blocks.
	s.fr.WriteWindowUpdate(id, 100000)
	s.flush()
	require.Empty(t, s.h.writable)
	s.fr.WriteWindowUpdate(0, 50000)
	s.flush()
	require.Equal(t, []uint32{id}, s.h.writable)
	require.Equal(t, 50000, s.c.WriteData(id, body[n:], true))
	n += 50000
	// A SETTINGS decrease makes the stream window negative (§6.9.2).
	s.fr.WriteWindowUpdate(0, 1<<20)
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	s.flush()
	require.Equal(t, 0, s.c.SendWindow(id))
	s.h.writable = nil
	s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535 + 100000})
	s.flush()
	require.Equal(t, []uint32{id}, s.h.writable)
	w := s.c.SendWindow(id)
	require.Equal(t, 100000-50000+100000, w)
	s.fr.WriteWindowUpdate(id, 100000)
	s.flush()
	require.Equal(t, len(body)-n, s.c.WriteData(id, body[n:], true))
	fs = s.frames()
	got, ended := bodyOf(fs, id)
	require.True(t, ended)
	require.Equal(t, len(body)-65535, len(got))
	require.Equal(t, 1, s.c.Streams()) // the response is still to come

	t.Run("max frame size", func(t *testing.T) {
		s := newServer(t, ClientConfig{}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 15})
		id := s.open(postFields, false)
		s.c.WriteData(id, make([]byte, 60000), false)
		for _, f := range s.frames() {
			if d, ok := f.(*dataFrame); ok {
				require.LessOrEqual(t, len(d.Data), 1<<15)
			}
		}
	})
	t.Run("overflow", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(postFields, false)
		s.fr.WriteWindowUpdate(id, MaxWindowSize)
		s.flush()
		s.expectRST(id, ErrCodeFlowControl)
		s.fr.WriteWindowUpdate(0, MaxWindowSize)
		s.flush()
		s.expectGoAway(ErrCodeFlowControl)
	})
	t.Run("SETTINGS overflow", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(postFields, false)
		s.fr.WriteWindowUpdate(id, MaxWindowSize-65535)
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65536})
		s.flush()
		s.expectGoAway(ErrCodeFlowControl)
	})
	t.Run("MaxOutput", func(t *testing.T) {
		s := newServer(t, ClientConfig{MaxOutput: 20000})
		s.noRead = true
		id := s.open(postFields, false)
		s.fr.WriteWindowUpdate(id, 1<<20)
		s.fr.WriteWindowUpdate(0, 1<<20)
		s.flush()
		n := s.c.WriteData(id, make([]byte, 100000), false)
		require.Less(t, n, 20000)
		require.Equal(t, 0, s.c.WriteData(id, make([]byte, 100000), false))
		require.Empty(t, s.h.writable)
		s.noRead = false
		s.drainOutput()
		require.Equal(t, []uint32{id}, s.h.writable)
	})
}

// TestClientConnFlowControlReceive sends a large body the way a correct
// server does, within the windows the client gives, and checks that the
// windows reopen only as the handler consumes.
func TestClientConnFlowControlReceive(t *testing.T) {
	s := newServer(t, ClientConfig{})
	s.h.consume = false
	id := s.open(getFields, true)
	s.headers(id, false, ":status", "200")
	// Without Consumed the server may send 256 KiB on the stream, no more.
	chunk := string(make([]byte, 16384))
	for i := 0; i < 16; i++ {
		s.data(id, false, chunk)
	}
	s.flush()
	require.NoError(t, s.err)
	for _, f := range s.frames() {
		_, isWU := f.(*http2.WindowUpdateFrame)
		require.False(t, isWU, "window update before Consumed")
	}
	s.data(id, false, "x")
	s.flush()
	s.expectRST(id, ErrCodeFlowControl)
	// The stream's octets went back to the connection window.
	require.Equal(t, 0, s.c.Streams())

	t.Run("large body", func(t *testing.T) {
		s := newServer(t, ClientConfig{})
		id := s.open(getFields, true)
		s.headers(id, false, ":status", "200")
		const total = 5 << 20
		streamWin, connWin := int64(256<<10), int64(1<<20)
		sent := 0
		for sent < total {
			k := int(min(16384, streamWin, connWin, int64(total-sent)))
			require.Positive(t, k, "client gave no window")
			s.data(id, sent+k == total, string(make([]byte, k)))
			sent += k
			streamWin -= int64(k)
			connWin -= int64(k)
			s.flush()
			require.NoError(t, s.err)
			for _, f := range s.frames() {
				if wu, ok := f.(*http2.WindowUpdateFrame); ok {
					if wu.StreamID == 0 {
						connWin += int64(wu.Increment)
					} else {
						streamWin += int64(wu.Increment)
					}
				}
			}
		}
		require.Equal(t, total, len(s.h.body[id]))
		require.True(t, s.h.ended[id])
	})
	t.Run("connection window exceeded", func(t *testing.T) {
		s := newServer(t, ClientConfig{InitialWindowSize: 1 << 20, ConnWindowSize: 100000})
		s.h.consume = false
		a := s.open(getFields, true)
		b := s.open(getFields, true)
		s.headers(a, false, ":status", "200")
		s.headers(b, false, ":status", "200")
		for i := 0; i < 3; i++ {
			s.data(a, false, chunk)
			s.data(b, false, chunk)
		}
		s.data(b, false, chunk)
		s.flush()
		s.expectGoAway(ErrCodeFlowControl)
	})
	t.Run("padding given back", func(t *testing.T) {
		s := newServer(t, ClientConfig{InitialWindowSize: 1000})
		s.h.consume = false
		id := s.open(getFields, true)
		s.headers(id, false, ":status", "200")
		for i := 0; i < 10; i++ {
			s.fr.WriteDataPadded(id, false, []byte("ab"), make([]byte, 200))
		}
		s.flush()
		require.NoError(t, s.err)
		require.Equal(t, 20, len(s.h.body[id]))
	})
}

func TestClientConnPing(t *testing.T) {
	s := newServer(t, ClientConfig{})
	s.fr.WritePing(false, [8]byte{1, 2, 3})
	s.flush()
	p := s.requireFrame(s.frames(), func(f any) bool { _, ok := f.(*http2.PingFrame); return ok }, "PING").(*http2.PingFrame)
	require.True(t, p.IsAck())
	require.Equal(t, [8]byte{1, 2, 3}, p.Data)

	s.c.Ping(s.now)
	p = s.requireFrame(s.frames(), func(f any) bool { _, ok := f.(*http2.PingFrame); return ok }, "PING").(*http2.PingFrame)
	require.False(t, p.IsAck())
	require.Equal(t, s.now.Add(DefaultPingTimeout), s.c.Deadline())
	s.now = s.now.Add(3 * time.Millisecond)
	s.fr.WritePing(true, [8]byte{9}) // not ours
	s.fr.WritePing(true, p.Data)
	s.flush()
	st := s.c.Stats()
	require.Equal(t, uint64(1), st.PingsAcked)
	require.Equal(t, 3*time.Millisecond, st.RTT)
	require.True(t, s.c.Deadline().IsZero())

	t.Run("timeout", func(t *testing.T) {
		s := newServer(t, ClientConfig{PingTimeout: time.Second})
		id := s.open(getFields, true)
		s.c.Ping(s.now)
		s.c.Timeout(s.now.Add(time.Second))
		require.True(t, s.c.Done())
		require.ErrorIs(t, s.c.Err(), ErrPingTimeout)
		require.Equal(t, ErrCodeCancel, s.h.resets[id])
	})
}

// Each flood from a hostile backend must end the connection with
// GOAWAY(ENHANCE_YOUR_CALM), count it, and keep the output bounded; the
// same traffic spread over time must not.
func TestClientConnFloods(t *testing.T) {
	cases := []struct {
		name      string
		counter   func(s FloodStats) uint64
		one       func(s *server, i int)
		sustained int // per second that the default budget sustains
	}{
		{"PING", func(f FloodStats) uint64 { return f.Ping }, func(s *server, i int) {
			s.fr.WritePing(false, [8]byte{byte(i)})
		}, 18},
		{"SETTINGS", func(f FloodStats) uint64 { return f.Settings }, func(s *server, i int) {
			s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}, 4},
		{"empty DATA", func(f FloodStats) uint64 { return f.EmptyData }, func(s *server, i int) {
			if i == 0 {
				s.open(getFields, true)
				s.headers(1, false, ":status", "200")
			}
			s.fr.WriteData(1, false, nil)
		}, 18},
		{"WINDOW_UPDATE", func(f FloodStats) uint64 { return f.WindowUpdate }, func(s *server, i int) {
			s.fr.WriteWindowUpdate(0, 1)
		}, 90},
		{"RST_STREAM on closed streams", func(f FloodStats) uint64 { return f.RapidReset }, func(s *server, i int) {
			if i == 0 {
				s.open(getFields, true)
				s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
			}
			s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		}, 90},
		{"malformed responses", func(f FloodStats) uint64 { return f.MadeYouReset }, func(s *server, i int) {
			id, err := s.c.OpenStream(getFields, true)
			require.NoError(s.t, err)
			s.headers(id, true, "no", "status")
		}, 90},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, ClientConfig{})
			for i := 0; i < 100000 && s.err == nil; i++ {
				tc.one(s, i)
				s.flush()
				require.Less(t, len(s.c.Output()), 64<<10)
			}
			s.expectGoAway(ErrCodeEnhanceYourCalm)
			require.Equal(t, uint64(1), tc.counter(s.c.Stats().Floods))

			s = newServer(t, ClientConfig{})
			for i := 0; i < 3*tc.sustained; i++ {
				tc.one(s, i)
				s.now = s.now.Add(time.Second / time.Duration(tc.sustained))
				s.flush()
				require.NoError(t, s.err, "event %d", i)
			}
		})
	}
	t.Run("control frames not read", func(t *testing.T) {
		s := newServer(t, ClientConfig{MaxQueuedControlFrames: 50, PingBudget: Budget{Burst: 1000, PerSecond: 1000}})
		s.noRead = true
		for i := 0; i < 100 && s.err == nil; i++ {
			s.fr.WritePing(false, [8]byte{byte(i)})
			s.flush()
		}
		s.noRead = false
		s.expectGoAway(ErrCodeEnhanceYourCalm)
		require.Equal(t, uint64(1), s.c.Stats().Floods.ControlQueue)
	})
}

func TestClientConnHandlerReentry(t *testing.T) {
	// The handler resets streams and opens new ones from inside its
	// callbacks, as a proxy does when a client goes away.
	s := newServer(t, ClientConfig{})
	a := s.open(postFields, false)
	b := s.open(postFields, false)
	s.h.onReset = func(id uint32) {
		s.c.Reset(b, ErrCodeCancel)
		_, _ = s.c.OpenStream(getFields, true)
	}
	s.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	s.flush()
	require.Contains(t, s.h.resets, a)
	require.Equal(t, 0, s.c.Streams())
	require.True(t, s.c.Done())
}
