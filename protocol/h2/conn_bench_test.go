package h2

import (
	"encoding/binary"
	"testing"
	"time"
)

// benchHandler answers each request once it ends, like a proxy whose
// backend answered at once: 200, two fields, and a 1 KiB body.
type benchHandler struct {
	c    *ServerConn
	body []byte
	resp []HeaderField
}

func (h *benchHandler) Headers(id uint32, fields []HeaderField, endStream, trailers bool) {
	if endStream {
		h.answer(id)
	}
}

func (h *benchHandler) Data(id uint32, data []byte, endStream bool) {
	h.c.Consumed(id, len(data))
	if endStream {
		h.answer(id)
	}
}

func (h *benchHandler) answer(id uint32) {
	if err := h.c.WriteHeaders(id, h.resp, false); err != nil {
		panic(err)
	}
	if h.c.WriteData(id, h.body, true) != len(h.body) {
		panic("short write")
	}
}

func (h *benchHandler) StreamReset(uint32, ErrCode) { panic("reset") }
func (h *benchHandler) StreamWritable(uint32)       {}

// exchangeStep prepares a connection that has served one request and
// returns a function that runs one more exchange: a browser-like GET, or
// a POST with a 1 KiB body, answered with a 1 KiB body. The request bytes
// are prepared once (HPACK-indexed after the first request, as on a real
// connection) and only their stream id changes.
func exchangeStep(tb testing.TB, post bool) func() {
	h := &benchHandler{body: make([]byte, 1024), resp: []HeaderField{
		{Name: ":status", Value: "200"},
		{Name: "content-type", Value: "text/html; charset=utf-8"},
		{Name: "content-length", Value: "1024"},
	}}
	c := NewServerConn(ServerConfig{}, h)
	h.c = c
	now := time.Unix(1, 0)
	start := append([]byte(ClientPreface), AppendSettings(nil, false)...)
	start = AppendSettingsAck(start)
	enc := NewEncoder()
	req := browserRequest
	if post {
		req = append([]HeaderField{{Name: ":method", Value: "POST"}}, browserRequest[1:]...)
	}
	// The first block fills the client's dynamic table; later ones, all
	// alike, refer to it.
	first := enc.Append(nil, req...)
	block := enc.Append(nil, req...)
	// Each request also gives back the connection window the previous
	// response used, as a client does.
	frames := func(id uint32, blk []byte) []byte {
		out := AppendWindowUpdate(nil, 0, 1024)
		out = AppendHeaders(out, id, !post, true, blk)
		if post {
			out = AppendData(out, id, true, make([]byte, 1024))
		}
		return out
	}
	msg := frames(1, block)
	feed := func(p []byte) {
		n, err := c.Feed(p, now)
		if err != nil || n != len(p) {
			tb.Fatalf("Feed: %d of %d, %v", n, len(p), err)
		}
		c.Consume(len(c.Output()))
		if c.Streams() != 0 {
			tb.Fatal("stream left open")
		}
	}
	feed(start)
	feed(frames(1, first))
	id := uint32(3)
	return func() {
		binary.BigEndian.PutUint32(msg[13+5:], id)
		if post {
			binary.BigEndian.PutUint32(msg[13+9+len(block)+5:], id)
		}
		feed(msg)
		id += 2
	}
}

// BenchmarkServerConnExchange measures one request/response exchange
// through a ServerConn, frames in to frames out (see exchangeStep).
func BenchmarkServerConnExchange(b *testing.B) {
	for _, post := range []string{"GET", "POST"} {
		b.Run(post, func(b *testing.B) {
			step := exchangeStep(b, post == "POST")
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
		})
	}
}
