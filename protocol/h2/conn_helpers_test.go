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

// testHandler records a ServerConn's events. With respond set it answers
// every request that ends with 200, an x-body-len header echoing the
// body length, and the body "ok".
type testHandler struct {
	c        *ServerConn
	heads    map[uint32][]HeaderField
	trailers map[uint32][]HeaderField
	body     map[uint32][]byte
	ended    map[uint32]bool
	resets   map[uint32]ErrCode
	writable []uint32
	consume  bool
	respond  bool
	onHead   func(id uint32)
}

func newTestHandler() *testHandler {
	return &testHandler{
		heads:    map[uint32][]HeaderField{},
		trailers: map[uint32][]HeaderField{},
		body:     map[uint32][]byte{},
		ended:    map[uint32]bool{},
		resets:   map[uint32]ErrCode{},
		consume:  true,
	}
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
	h.body[id] = append(h.body[id], data...)
	if h.consume {
		h.c.Consumed(id, len(data))
	}
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
func (h *testHandler) StreamWritable(id uint32)            { h.writable = append(h.writable, id) }

// peer is a client built on x/net/http2's Framer: what it writes is fed
// to the ServerConn, what the ServerConn outputs is read back with the
// same Framer.
type peer struct {
	t       testing.TB
	c       *ServerConn
	h       *testHandler
	toSrv   bytes.Buffer // written by the client, not yet fed
	fromSrv bytes.Buffer // the server's output, not yet read
	fr      *http2.Framer
	enc     *hpack.Encoder
	encBuf  bytes.Buffer
	dec     *hpack.Decoder
	now     time.Time
	err     error // Feed's error
	noRead  bool  // do not Consume the server's output
}

func newPeerRaw(t testing.TB, cfg ServerConfig) *peer {
	p := &peer{t: t, h: newTestHandler(), now: time.Unix(1000, 0)}
	p.c = NewServerConn(cfg, p.h)
	p.h.c = p.c
	p.fr = http2.NewFramer(&p.toSrv, &p.fromSrv)
	p.fr.AllowIllegalWrites = true
	p.fr.AllowIllegalReads = true
	p.fr.SetMaxReadFrameSize(MaxFrameSizeLimit)
	p.enc = hpack.NewEncoder(&p.encBuf)
	p.dec = hpack.NewDecoder(4096, nil)
	return p
}

// newPeer connects: preface, empty SETTINGS, reads the server's SETTINGS
// and acknowledges it.
func newPeer(t testing.TB, cfg ServerConfig) *peer {
	p := newPeerRaw(t, cfg)
	p.toSrv.WriteString(ClientPreface)
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

// flush feeds everything the client wrote, like a read loop would: in
// pieces of at most 64 KiB, keeping what Feed did not consume.
func (p *peer) flush() {
	for p.toSrv.Len() > 0 && p.err == nil {
		b := p.toSrv.Bytes()
		if len(b) > 64<<10 {
			b = b[:64<<10]
		}
		n, err := p.c.Feed(b, p.now)
		p.toSrv.Next(n)
		p.err = err
		if n == 0 {
			break
		}
	}
	p.drainOutput()
}

func (p *peer) drainOutput() {
	if p.noRead {
		return
	}
	out := p.c.Output()
	p.fromSrv.Write(out)
	p.c.Consume(len(out))
}

// frames reads every frame the server has output so far.
func (p *peer) frames() []any {
	var fs []any
	for p.fromSrv.Len() > 0 {
		f, err := p.fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(p.t, err)
		fs = append(fs, copyFrame(f))
	}
	return fs
}

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

func (p *peer) requireFrame(fs []any, match func(any) bool, what string) any {
	p.t.Helper()
	for _, f := range fs {
		if match(f) {
			return f
		}
	}
	require.Failf(p.t, "frame not found", "%s not in %s", what, describe(fs))
	return nil
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
	fs := p.frames()
	g := p.requireFrame(fs, func(f any) bool { _, ok := f.(*goAwayFrame); return ok }, "GOAWAY").(*goAwayFrame)
	require.Equal(p.t, http2.ErrCode(code), g.Code, "GOAWAY %s", g.Debug)
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
	fs := p.frames()
	p.requireFrame(fs, func(f any) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == http2.ErrCode(code)
	}, "RST_STREAM("+strconv.Itoa(int(id))+","+code.String()+")")
	require.NoError(p.t, p.err)
	require.False(p.t, p.c.Done())
}

func (p *peer) block(fields ...string) []byte {
	p.encBuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(p.t, p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}))
	}
	return append([]byte(nil), p.encBuf.Bytes()...)
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
