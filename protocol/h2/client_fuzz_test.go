package h2

import (
	"testing"
	"time"
)

// clientFuzzHandler consumes everything, writes more request body when
// told it may, and resets a stream now and then, so that the fuzzer
// reaches the writing paths and re-entry too.
type clientFuzzHandler struct {
	c     *ClientConn
	calls int
}

func (h *clientFuzzHandler) ResponseHeaders(id uint32, fields []HeaderField, endStream, trailers bool) {
	h.calls++
	if h.calls%7 == 0 {
		h.c.Reset(id, ErrCodeCancel)
	}
}

func (h *clientFuzzHandler) ResponseData(id uint32, data []byte, endStream bool) {
	h.c.Consumed(id, len(data))
}

func (h *clientFuzzHandler) StreamReset(uint32, ErrCode) {}
func (h *clientFuzzHandler) StreamWritable(id uint32) {
	h.c.WriteData(id, make([]byte, 1000), false)
}

// clientFuzzSeeds are server byte streams (after its SETTINGS and ACK)
// for streams 1 (GET, ended), 3 and 5 (POST, open).
func clientFuzzSeeds() [][]byte {
	resp := NewEncoder().Append(nil, HeaderField{Name: ":status", Value: "200"}, HeaderField{Name: "content-length", Value: "3"})
	interim := NewEncoder().Append(nil, HeaderField{Name: ":status", Value: "103"})
	trailers := NewEncoder().Append(nil, HeaderField{Name: "grpc-status", Value: "0"})
	join := func(frames ...[]byte) []byte {
		b := []byte{7}
		for _, fr := range frames {
			b = append(b, fr...)
		}
		return b
	}
	return [][]byte{
		join(AppendHeaders(nil, 1, false, true, resp), AppendData(nil, 1, true, []byte("abc"))),
		join(AppendHeaders(nil, 3, false, true, interim), AppendHeaders(nil, 3, false, false, resp[:2]), AppendContinuation(nil, 3, true, resp[2:]),
			AppendDataPadded(nil, 3, false, []byte("ab"), 4), AppendData(nil, 3, false, []byte("c")), AppendHeaders(nil, 3, true, true, trailers)),
		join(AppendWindowUpdate(nil, 0, 100000), AppendWindowUpdate(nil, 5, 100000), AppendSettings(nil, false, Setting{SettingInitialWindowSize, 1}),
			AppendSettings(nil, false, Setting{SettingInitialWindowSize, 1 << 20}, Setting{SettingMaxFrameSize, 1 << 15})),
		join(AppendGoAway(nil, 1, ErrCodeNo, []byte("bye")), AppendHeaders(nil, 1, true, true, resp)),
		join(AppendRSTStream(nil, 3, ErrCodeRefusedStream), AppendData(nil, 3, true, []byte("x")), AppendPing(nil, false, [8]byte{1})),
		join(AppendPushPromise(nil, 1, 2, true, resp)),
		{0x47}, // no server SETTINGS at all
	}
}

// FuzzClientConn feeds arbitrary server frames to a connection with three
// streams open, after a valid server SETTINGS and ACK (unless the mode
// byte says otherwise). It must never panic, keep its output bounded,
// and keep its invariants. The first byte chooses how the input is cut
// into reads, whether output is drained, and whether the server's
// preface is sent.
func FuzzClientConn(f *testing.F) {
	for _, s := range clientFuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode, data := data[0], data[1:]
		cfg := ClientConfig{MaxOutput: 16 << 10, MaxQueuedControlFrames: 100, MaxConcurrentStreams: 8}
		h := &clientFuzzHandler{}
		c := NewClientConn(cfg, h)
		h.c = c
		now := time.Unix(1, 0)
		get := []HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "b"}, {Name: ":path", Value: "/"}}
		post := append([]HeaderField{{Name: ":method", Value: "POST"}}, get[1:]...)
		for i, fields := range [][]HeaderField{get, post, post} {
			if _, err := c.OpenStream(fields, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		if mode&0x40 == 0 {
			start := AppendSettings(nil, false)
			start = AppendSettingsAck(start)
			if n, err := c.Feed(start, now); err != nil || n != len(start) {
				t.Fatalf("handshake: %d %v", n, err)
			}
		}
		c.Consume(len(c.Output()))
		opens := 3
		// Request bodies stop at MaxOutput; our heads, and the acks,
		// resets, window updates and GOAWAY the server's frames cause,
		// add a few dozen octets each.
		bound := func(fed int) int { return cfg.MaxOutput + 64*(fed/9+1) + 128*opens + 1024 }
		now = fuzzFeed(t, c, mode, data, now, int(cfg.MaxConcurrentStreams), bound, func(reads int) {
			if c.CanOpen() && reads%3 == 0 {
				// CanOpen promises a stream id; a server that lowered
				// MAX_HEADER_LIST_SIZE may still make the head too large.
				if _, err := c.OpenStream(post, false); err != nil && err != ErrHeaderListTooLarge {
					t.Fatal(err)
				}
				opens++
			}
		})
		c.Ping(now)
		c.Shutdown(now)
		c.Timeout(now.Add(time.Hour))
		c.Close()
		if !c.Done() || c.Streams() != 0 {
			t.Fatal("not done after Close")
		}
	})
}
