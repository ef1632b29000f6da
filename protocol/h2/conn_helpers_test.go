package h2

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// recorder records the events ServerConn and ClientConn report alike.
type recorder struct {
	trailers map[uint32][]HeaderField
	body     map[uint32][]byte
	ended    map[uint32]bool
	resets   map[uint32]ErrCode
	writable []uint32
	consume  bool // give the body back with Consumed as it arrives
}

func newRecorder() recorder {
	return recorder{
		trailers: map[uint32][]HeaderField{},
		body:     map[uint32][]byte{},
		ended:    map[uint32]bool{},
		resets:   map[uint32]ErrCode{},
		consume:  true,
	}
}

// data records body octets, consuming them on c if consume is set.
func (r *recorder) data(c interface{ Consumed(id uint32, n int) }, id uint32, data []byte) {
	r.body[id] = append(r.body[id], data...)
	if r.consume {
		c.Consumed(id, len(data))
	}
}

func (r *recorder) StreamWritable(id uint32) { r.writable = append(r.writable, id) }

// testHandler records a ServerConn's events. With respond set it answers
// every request that ends with 200, an x-body-len header echoing the
// body length, and the body "ok".
type testHandler struct {
	recorder
	c       *ServerConn
	heads   map[uint32][]HeaderField
	respond bool
	onHead  func(id uint32)
}

func newTestHandler() *testHandler {
	return &testHandler{recorder: newRecorder(), heads: map[uint32][]HeaderField{}}
}

func (h *testHandler) Headers(id uint32, fields []HeaderField, endStream, trailers bool) {
	cp := append([]HeaderField(nil), fields...)
	if trailers {
		h.trailers[id] = cp
	} else {
		h.heads[id] = cp
		if h.onHead != nil {
			h.onHead(id)
		}
	}
	if endStream {
		h.end(id)
	}
}

func (h *testHandler) Data(id uint32, data []byte, endStream bool) {
	h.data(h.c, id, data)
	if endStream {
		h.end(id)
	}
}

func (h *testHandler) end(id uint32) {
	h.ended[id] = true
	if h.respond {
		_ = h.c.WriteHeaders(id, []HeaderField{
			{Name: ":status", Value: "200"},
			{Name: "x-body-len", Value: strconv.Itoa(len(h.body[id]))},
		}, false)
		h.c.WriteData(id, []byte("ok"), true)
	}
}

func (h *testHandler) StreamReset(id uint32, code ErrCode) { h.resets[id] = code }

// wire is the x/net/http2 side of a connection under test: what its
// Framer writes is fed to the connection, what the connection outputs is
// read back with the same Framer.
type wire struct {
	t        testing.TB
	conn     wireConn
	toConn   bytes.Buffer // written by the test side, not yet fed
	fromConn bytes.Buffer // the connection's output, not yet read
	fr       *http2.Framer
	enc      *hpack.Encoder
	encBuf   bytes.Buffer
	dec      *hpack.Decoder
	now      time.Time
	err      error // Feed's error
	noRead   bool  // do not Consume the connection's output
}

// wireConn is what a wire drives of ServerConn and ClientConn.
type wireConn interface {
	Feed(b []byte, now time.Time) (int, error)
	Output() []byte
	Consume(n int)
	Done() bool
}

func (w *wire) init(t testing.TB, c wireConn) {
	w.t, w.conn, w.now = t, c, time.Unix(1000, 0)
	w.fr = http2.NewFramer(&w.toConn, &w.fromConn)
	w.fr.AllowIllegalWrites = true
	w.fr.AllowIllegalReads = true
	w.fr.SetMaxReadFrameSize(MaxFrameSizeLimit)
	w.enc = hpack.NewEncoder(&w.encBuf)
	w.dec = hpack.NewDecoder(4096, nil)
}

// flush feeds everything the test side wrote, like a read loop would: in
// pieces of at most 64 KiB, keeping what Feed did not consume, until the
// connection is done.
func (w *wire) flush() {
	for w.toConn.Len() > 0 && w.err == nil && !w.conn.Done() {
		b := w.toConn.Bytes()
		if len(b) > 64<<10 {
			b = b[:64<<10]
		}
		n, err := w.conn.Feed(b, w.now)
		w.toConn.Next(n)
		w.err = err
		if n == 0 {
			break
		}
	}
	w.drainOutput()
}

func (w *wire) drainOutput() {
	if w.noRead {
		return
	}
	out := w.conn.Output()
	w.fromConn.Write(out)
	w.conn.Consume(len(out))
}

// readFrames reads every frame the connection has output so far.
func (w *wire) readFrames() []any {
	var fs []any
	for w.fromConn.Len() > 0 {
		f, err := w.fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(w.t, err)
		fs = append(fs, copyFrame(f))
	}
	return fs
}

func (w *wire) requireFrame(fs []any, match func(any) bool, what string) any {
	w.t.Helper()
	for _, f := range fs {
		if match(f) {
			return f
		}
	}
	require.Failf(w.t, "frame not found", "%s not in %s", what, describe(fs))
	return nil
}

// requireRST checks that fs hold RST_STREAM(code) on id.
func (w *wire) requireRST(fs []any, id uint32, code ErrCode) {
	w.t.Helper()
	w.requireFrame(fs, func(f any) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == http2.ErrCode(code)
	}, "RST_STREAM("+strconv.Itoa(int(id))+","+code.String()+")")
}

// requireGoAway returns the GOAWAY of fs, checking its code.
func (w *wire) requireGoAway(fs []any, code ErrCode) *goAwayFrame {
	w.t.Helper()
	g := w.requireFrame(fs, func(f any) bool { _, ok := f.(*goAwayFrame); return ok }, "GOAWAY").(*goAwayFrame)
	require.Equal(w.t, http2.ErrCode(code), g.Code, "GOAWAY %s", g.Debug)
	return g
}

func (w *wire) block(fields ...string) []byte {
	w.encBuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(w.t, w.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}))
	}
	return append([]byte(nil), w.encBuf.Bytes()...)
}

// peer is a client on a wire to a ServerConn.
type peer struct {
	wire
	c *ServerConn
	h *testHandler
}

func newPeerRaw(t testing.TB, cfg ServerConfig) *peer {
	p := &peer{h: newTestHandler()}
	p.c = NewServerConn(cfg, p.h)
	p.h.c = p.c
	p.init(t, p.c)
	return p
}

// newPeer connects: preface, empty SETTINGS, reads the server's SETTINGS
// and acknowledges it.
func newPeer(t testing.TB, cfg ServerConfig) *peer {
	p := newPeerRaw(t, cfg)
	p.toConn.WriteString(ClientPreface)
	require.NoError(t, p.fr.WriteSettings())
	p.flush()
	fs := p.frames()
	require.GreaterOrEqual(t, len(fs), 2)
	sf, ok := fs[0].(*settingsFrame)
	require.True(t, ok, "first frame %T", fs[0])
	require.False(t, sf.Ack)
	p.requireFrame(fs, func(f any) bool {
		s, ok := f.(*settingsFrame)
		return ok && s.Ack
	}, "SETTINGS ACK")
	require.NoError(t, p.fr.WriteSettingsAck())
	p.flush()
	require.Empty(t, p.frames())
	return p
}

// frames reads every frame the server has output so far.
func (p *peer) frames() []any { return p.readFrames() }

// copyFrame detaches the frames whose payload the Framer reuses.
func copyFrame(f http2.Frame) any {
	switch f := f.(type) {
	case *http2.DataFrame:
		return &dataFrame{StreamID: f.StreamID, Data: append([]byte(nil), f.Data()...), End: f.StreamEnded()}
	case *http2.HeadersFrame:
		return &headersFrame{StreamID: f.StreamID, Frag: append([]byte(nil), f.HeaderBlockFragment()...), End: f.StreamEnded(), EndHeaders: f.HeadersEnded()}
	case *http2.ContinuationFrame:
		return &contFrame{StreamID: f.StreamID, Frag: append([]byte(nil), f.HeaderBlockFragment()...), EndHeaders: f.HeadersEnded()}
	case *http2.SettingsFrame:
		sf := &settingsFrame{Ack: f.IsAck(), Vals: map[http2.SettingID]uint32{}}
		_ = f.ForeachSetting(func(s http2.Setting) error { sf.Vals[s.ID] = s.Val; return nil })
		return sf
	case *http2.GoAwayFrame:
		return &goAwayFrame{Last: f.LastStreamID, Code: f.ErrCode, Debug: string(f.DebugData())}
	}
	return f
}

type dataFrame struct {
	StreamID uint32
	Data     []byte
	End      bool
}
type headersFrame struct {
	StreamID   uint32
	Frag       []byte
	End        bool
	EndHeaders bool
}
type contFrame struct {
	StreamID   uint32
	Frag       []byte
	EndHeaders bool
}
type settingsFrame struct {
	Ack  bool
	Vals map[http2.SettingID]uint32
}
type goAwayFrame struct {
	Last  uint32
	Code  http2.ErrCode
	Debug string
}

func describe(fs []any) string {
	var b bytes.Buffer
	for _, f := range fs {
		switch f := f.(type) {
		case *dataFrame:
			b.WriteString("DATA(" + strconv.Itoa(int(f.StreamID)) + "," + strconv.Itoa(len(f.Data)) + ") ")
		case *headersFrame:
			b.WriteString("HEADERS(" + strconv.Itoa(int(f.StreamID)) + ") ")
		case *contFrame:
			b.WriteString("CONTINUATION(" + strconv.Itoa(int(f.StreamID)) + ") ")
		case *goAwayFrame:
			b.WriteString("GOAWAY(" + f.Code.String() + "," + f.Debug + ") ")
		case *http2.RSTStreamFrame:
			b.WriteString("RST_STREAM(" + strconv.Itoa(int(f.StreamID)) + "," + f.ErrCode.String() + ") ")
		case *http2.WindowUpdateFrame:
			b.WriteString("WINDOW_UPDATE(" + strconv.Itoa(int(f.StreamID)) + "," + strconv.Itoa(int(f.Increment)) + ") ")
		case *settingsFrame:
			b.WriteString("SETTINGS ")
		default:
			b.WriteString(f.(http2.Frame).Header().Type.String() + " ")
		}
	}
	return b.String()
}

// expectGoAway checks that the connection ended with GOAWAY(code).
func (p *peer) expectGoAway(code ErrCode) *goAwayFrame {
	p.t.Helper()
	g := p.requireGoAway(p.frames(), code)
	require.Error(p.t, p.err)
	require.True(p.t, p.c.Done())
	var ce ConnectionError
	require.True(p.t, errors.As(p.err, &ce))
	require.Equal(p.t, code, ce.Code)
	return g
}

// expectRST checks that the server reset id with code, and the
// connection goes on.
func (p *peer) expectRST(id uint32, code ErrCode) {
	p.t.Helper()
	p.requireRST(p.frames(), id, code)
	require.NoError(p.t, p.err)
	require.False(p.t, p.c.Done())
}

func (p *peer) get(extra ...string) []byte {
	return p.block(append([]string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", "example.com"}, extra...)...)
}

func (p *peer) post(extra ...string) []byte {
	return p.block(append([]string{":method", "POST", ":scheme", "https", ":path", "/up", ":authority", "example.com"}, extra...)...)
}

func (p *peer) headers(id uint32, block []byte, endStream bool) {
	require.NoError(p.t, p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: endStream, EndHeaders: true}))
}

// decode decodes a response head from a HEADERS frame and its
// CONTINUATIONs.
func (p *peer) decode(frag []byte) []hpack.HeaderField {
	fs, err := p.dec.DecodeFull(frag)
	require.NoError(p.t, err)
	return fs
}

func (p *peer) statusOf(fs []any, id uint32) string {
	p.t.Helper()
	var block []byte
	found := false
	for _, f := range fs {
		switch f := f.(type) {
		case *headersFrame:
			if f.StreamID == id && !found {
				block = append(block, f.Frag...)
				found = f.EndHeaders
				if found {
					for _, hf := range p.decode(block) {
						if hf.Name == ":status" {
							return hf.Value
						}
					}
				}
			}
		case *contFrame:
			if f.StreamID == id && !found && block != nil {
				block = append(block, f.Frag...)
				if f.EndHeaders {
					for _, hf := range p.decode(block) {
						if hf.Name == ":status" {
							return hf.Value
						}
					}
					found = true
				}
			}
		}
	}
	return ""
}

func bodyOf(fs []any, id uint32) (body []byte, ended bool) {
	for _, f := range fs {
		if d, ok := f.(*dataFrame); ok && d.StreamID == id {
			body = append(body, d.Data...)
			ended = ended || d.End
		}
	}
	return body, ended
}
