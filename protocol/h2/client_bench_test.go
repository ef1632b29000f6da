package h2

import (
	"encoding/binary"
	"testing"
	"time"
)

// benchClientHandler consumes every response octet at once, like a proxy
// whose client reads as fast as the backend sends.
type benchClientHandler struct {
	c     *ClientConn
	ended int
}

func (h *benchClientHandler) ResponseHeaders(id uint32, fields []HeaderField, endStream, trailers bool) {
	if endStream {
		h.ended++
	}
}

func (h *benchClientHandler) ResponseData(id uint32, data []byte, endStream bool) {
	h.c.Consumed(id, len(data))
	if endStream {
		h.ended++
	}
}

func (h *benchClientHandler) StreamReset(uint32, ErrCode) { panic("reset") }
func (h *benchClientHandler) StreamWritable(uint32)       {}

// clientExchangeStep prepares a connection that has done one exchange and
// returns a function that runs one more: a browser-like GET (or a POST
// with a 1 KiB body) out, a 200 with three fields and a 1 KiB body in.
// The response bytes are prepared once (HPACK-indexed after the first
// response, as on a real connection) and only their stream id changes.
func clientExchangeStep(tb testing.TB, post bool) func() {
	h := &benchClientHandler{}
	c := NewClientConn(ClientConfig{}, h)
	h.c = c
	now := time.Unix(1, 0)
	req := browserRequest
	if post {
		req = append([]HeaderField{{Name: ":method", Value: "POST"}}, browserRequest[1:]...)
	}
	body := make([]byte, 1024)
	enc := NewEncoder()
	resp := []HeaderField{
		{Name: ":status", Value: "200"},
		{Name: "content-type", Value: "text/html; charset=utf-8"},
		{Name: "content-length", Value: "1024"},
	}
	first := enc.Append(nil, resp...)
	block := enc.Append(nil, resp...)
	frames := func(id uint32, blk []byte) []byte {
		var out []byte
		if post {
			// The server gives back the connection window our body used.
			out = AppendWindowUpdate(out, 0, 1024)
		}
		out = AppendHeaders(out, id, false, true, blk)
		return AppendData(out, id, true, body)
	}
	feed := func(p []byte) {
		n, err := c.Feed(p, now)
		if err != nil || n != len(p) {
			tb.Fatalf("Feed: %d of %d, %v", n, len(p), err)
		}
	}
	exchange := func(id uint32, msg []byte) {
		got, err := c.OpenStream(req, !post)
		if err != nil || got != id {
			tb.Fatalf("OpenStream: %d %v", got, err)
		}
		if post && c.WriteData(id, body, true) != len(body) {
			tb.Fatal("short write")
		}
		c.Consume(len(c.Output()))
		feed(msg)
		c.Consume(len(c.Output()))
		if c.Streams() != 0 {
			tb.Fatal("stream left open")
		}
	}
	start := AppendSettings(nil, false)
	start = AppendSettingsAck(start)
	feed(start)
	c.Consume(len(c.Output()))
	exchange(1, frames(1, first))
	msg := frames(3, block)
	id := uint32(3)
	off := 0 // of the HEADERS frame
	if post {
		off = FrameHeaderLen + 4
	}
	return func() {
		binary.BigEndian.PutUint32(msg[off+5:], id)
		binary.BigEndian.PutUint32(msg[off+FrameHeaderLen+len(block)+5:], id)
		exchange(id, msg)
		id += 2
	}
}

// BenchmarkClientConnExchange measures one request/response exchange
// through a ClientConn, request frames out to response events in.
func BenchmarkClientConnExchange(b *testing.B) {
	for _, method := range []string{"GET", "POST"} {
		b.Run(method, func(b *testing.B) {
			step := clientExchangeStep(b, method == "POST")
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
		})
	}
}

// TestClientConnExchangeAllocs holds the steady state to no allocation:
// streams come from the free list and every buffer is reused; the
// response fields are all indexed, so HPACK allocates no string either.
func TestClientConnExchangeAllocs(t *testing.T) {
	for _, post := range []bool{false, true} {
		step := clientExchangeStep(t, post)
		step()
		if n := testing.AllocsPerRun(200, step); n != 0 {
			t.Errorf("post=%v: %v allocations per exchange", post, n)
		}
	}
}
