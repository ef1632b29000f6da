package h2

import (
	"testing"
	"time"
)

// fuzzHandler answers every request that ends and consumes all data, so
// that the fuzzer reaches the writing paths too.
type fuzzHandler struct{ c *ServerConn }

func (h fuzzHandler) Headers(id uint32, fields []HeaderField, endStream, trailers bool) {
	if endStream {
		h.answer(id)
	}
}

func (h fuzzHandler) Data(id uint32, data []byte, endStream bool) {
	h.c.Consumed(id, len(data))
	if endStream {
		h.answer(id)
	}
}

func (h fuzzHandler) answer(id uint32) {
	_ = h.c.WriteHeaders(id, []HeaderField{{Name: ":status", Value: "200"}}, false)
	h.c.WriteData(id, make([]byte, 40000), true)
}

func (h fuzzHandler) StreamReset(uint32, ErrCode) {}
func (h fuzzHandler) StreamWritable(id uint32)    { h.c.WriteData(id, make([]byte, 1000), false) }

// FuzzServerConn feeds arbitrary frames to a connection after a valid
// preface and SETTINGS exchange. It must never panic, keep its output
// bounded, and keep its invariants. The first byte chooses how the input
// is cut into reads and whether output is drained (a client that does not
// read).
func FuzzServerConn(f *testing.F) {
	get := NewEncoder().Append(nil, browserRequest...)
	post := NewEncoder().Append(nil, append([]HeaderField{{Name: ":method", Value: "POST"}}, browserRequest[1:]...)...)
	seed := func(frames ...[]byte) []byte {
		b := []byte{7}
		for _, fr := range frames {
			b = append(b, fr...)
		}
		return b
	}
	f.Add(seed(AppendHeaders(nil, 1, true, true, get)))
	f.Add(seed(AppendHeaders(nil, 1, false, true, post), AppendData(nil, 1, false, []byte("abc")), AppendDataPadded(nil, 1, true, []byte("de"), 3)))
	f.Add(seed(AppendHeaders(nil, 1, true, false, get[:5]), AppendContinuation(nil, 1, false, nil), AppendContinuation(nil, 1, true, get[5:])))
	f.Add(seed(AppendHeaders(nil, 1, false, true, post), AppendRSTStream(nil, 1, ErrCodeCancel), AppendData(nil, 1, true, []byte("x"))))
	f.Add(seed(AppendPing(nil, false, [8]byte{1}), AppendWindowUpdate(nil, 0, 100), AppendSettings(nil, false, Setting{SettingInitialWindowSize, 1}), AppendHeaders(nil, 3, true, true, get), AppendWindowUpdate(nil, 3, 5)))
	f.Add(seed(AppendGoAway(nil, 0, ErrCodeNo, nil), AppendHeaders(nil, 1, true, true, get)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode, data := data[0], data[1:]
		cfg := ServerConfig{MaxOutput: 16 << 10, MaxQueuedControlFrames: 100}
		h := &fuzzHandler{}
		c := NewServerConn(cfg, h)
		h.c = c
		now := time.Unix(1, 0)
		start := append([]byte(ClientPreface), AppendSettings(nil, false)...)
		start = AppendSettingsAck(start)
		if n, err := c.Feed(start, now); err != nil || n != len(start) {
			t.Fatalf("handshake: %d %v", n, err)
		}
		c.Consume(len(c.Output()))
		// Output bound: the response bodies stop at MaxOutput; heads,
		// resets, acks and GOAWAY add a few hundred octets per frame
		// received, at most.
		bound := cfg.MaxOutput + 64*(len(data)/9+1) + 1024
		now = fuzzFeed(t, c, mode, data, now, int(DefaultMaxConcurrentStreams), func(int) int { return bound }, nil)
		c.Shutdown(now)
		c.Timeout(now.Add(time.Hour))
	})
}

// fuzzConn is what fuzzFeed drives of ServerConn and ClientConn.
type fuzzConn interface {
	wireConn
	Streams() int
	MaxFrameLen() int
	Timeout(now time.Time)
}

// fuzzFeed feeds data to c in reads whose size mode chooses, draining
// Output unless mode's high bit is set, and advancing the clock by 10 ms
// a read. After each read it checks that an error ended the connection,
// that at most maxStreams streams are open, that Output holds no more
// than bound(fed) octets (fed: octets Feed consumed so far), and that
// what Feed left is less than a frame; between reads it calls each
// (when not nil) with the number of reads. It stops at the end of data
// or of the connection and returns the clock.
func fuzzFeed(t *testing.T, c fuzzConn, mode byte, data []byte, now time.Time, maxStreams int, bound func(fed int) int, each func(reads int)) time.Time {
	chunk := int(mode%16)*97 + 1
	drain := mode&0x80 == 0
	reads, fed := 0, 0
	buf := make([]byte, 0, 64<<10)
	for len(data) > 0 || len(buf) > 0 {
		k := min(chunk, len(data))
		buf = append(buf, data[:k]...)
		data = data[k:]
		n, err := c.Feed(buf, now)
		if n < 0 || n > len(buf) {
			t.Fatalf("Feed consumed %d of %d", n, len(buf))
		}
		buf = append(buf[:0], buf[n:]...)
		reads++
		fed += n
		if err != nil && !c.Done() {
			t.Fatal("error but not done")
		}
		if c.Streams() > maxStreams {
			t.Fatalf("%d streams open", c.Streams())
		}
		if out, b := len(c.Output()), bound(fed); out > b {
			t.Fatalf("output %d > %d", out, b)
		}
		if each != nil {
			each(reads)
		}
		if drain {
			c.Consume(len(c.Output()))
		}
		now = now.Add(10 * time.Millisecond)
		c.Timeout(now)
		if err != nil || (n == 0 && k == 0) || c.Done() {
			break
		}
		if len(buf) > c.MaxFrameLen() {
			t.Fatalf("kept %d octets, more than a frame", len(buf))
		}
	}
	return now
}
