package h2

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// Each flood must end the connection with GOAWAY(ENHANCE_YOUR_CALM),
// count it, and keep the output bounded; the same traffic spread over
// time (the budget's refill) must not.
func TestServerConnFloods(t *testing.T) {
	cases := []struct {
		name    string
		counter func(s FloodStats) uint64
		// one sends one unit of the flood; i counts from 0.
		one func(p *peer, i int)
		// per second that the default budget sustains forever.
		sustained int
	}{
		{"rapid reset", func(s FloodStats) uint64 { return s.RapidReset }, func(p *peer, i int) {
			id := uint32(2*i + 1)
			p.headers(id, p.get(), false)
			p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}, 90},
		{"MadeYouReset", func(s FloodStats) uint64 { return s.MadeYouReset }, func(p *peer, i int) {
			// A valid request, then a frame that makes us reset it.
			id := uint32(2*i + 1)
			p.headers(id, p.post(), false)
			p.fr.WriteWindowUpdate(id, 0)
		}, 90},
		{"malformed requests", func(s FloodStats) uint64 { return s.MadeYouReset }, func(p *peer, i int) {
			p.headers(uint32(2*i+1), p.block(":method", "GET"), true)
		}, 90},
		{"PING", func(s FloodStats) uint64 { return s.Ping }, func(p *peer, i int) {
			p.fr.WritePing(false, [8]byte{byte(i)})
		}, 18},
		{"SETTINGS", func(s FloodStats) uint64 { return s.Settings }, func(p *peer, i int) {
			p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}, 4},
		{"empty DATA", func(s FloodStats) uint64 { return s.EmptyData }, func(p *peer, i int) {
			if i == 0 {
				p.headers(1, p.post(), false)
			}
			p.fr.WriteData(1, false, nil)
		}, 18},
		{"WINDOW_UPDATE", func(s FloodStats) uint64 { return s.WindowUpdate }, func(p *peer, i int) {
			p.fr.WriteWindowUpdate(0, 1)
		}, 90},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, ServerConfig{})
			for i := 0; i < 100000 && p.err == nil; i++ {
				tc.one(p, i)
				p.flush()
				require.Less(t, len(p.c.Output()), 64<<10)
			}
			g := p.expectGoAway(ErrCodeEnhanceYourCalm)
			require.NotEmpty(t, g.Debug)
			require.Equal(t, uint64(1), tc.counter(p.c.Stats().Floods))

			// At the sustained rate the budget never runs out.
			p = newPeer(t, ServerConfig{})
			for i := 0; i < 3*tc.sustained+5000/len(tc.name); i++ {
				if i%tc.sustained == 0 {
					p.now = p.now.Add(time.Second)
				}
				tc.one(p, i)
				p.flush()
				p.frames()
				require.NoError(t, p.err, "unit %d", i)
			}
		})
	}
}

func TestServerConnContinuationFlood(t *testing.T) {
	t.Run("endless empty CONTINUATIONs", func(t *testing.T) {
		p := newPeer(t, ServerConfig{})
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: p.get()[:3]})
		p.flush()
		for i := 0; i < 1000 && p.err == nil; i++ {
			p.fr.WriteContinuation(1, false, nil)
			p.flush()
		}
		p.expectGoAway(ErrCodeEnhanceYourCalm)
		require.Equal(t, uint64(1), p.c.Stats().Floods.Continuation)
	})
	t.Run("block beyond MaxHeaderBlockSize", func(t *testing.T) {
		p := newPeer(t, ServerConfig{MaxHeaderListSize: 4096})
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: make([]byte, 5000)})
		for i := 0; i < 10 && p.err == nil; i++ {
			p.fr.WriteContinuation(1, false, make([]byte, 1000))
			p.flush()
			require.LessOrEqual(t, cap(p.c.block), 3*8192)
		}
		p.expectGoAway(ErrCodeEnhanceYourCalm)
		require.Equal(t, uint64(1), p.c.Stats().Floods.Continuation)
	})
}

func TestServerConnControlQueue(t *testing.T) {
	// A client that PINGs (within the budget) but never reads.
	p := newPeer(t, ServerConfig{MaxQueuedControlFrames: 50, PingBudget: Budget{Burst: 1000, PerSecond: 1000}})
	p.noRead = true
	for i := 0; i < 100 && p.err == nil; i++ {
		p.fr.WritePing(false, [8]byte{})
		p.flush()
	}
	require.Error(t, p.err)
	require.Equal(t, uint64(1), p.c.Stats().Floods.ControlQueue)
	require.Less(t, len(p.c.Output()), 51*17+100)
	p.noRead = false
	p.drainOutput()
	p.expectGoAway(ErrCodeEnhanceYourCalm)

	// The same client reading its acks is fine.
	p = newPeer(t, ServerConfig{MaxQueuedControlFrames: 50, PingBudget: Budget{Burst: 1000, PerSecond: 1000}})
	for i := 0; i < 100; i++ {
		p.fr.WritePing(false, [8]byte{})
		p.flush()
		p.frames()
	}
	require.NoError(t, p.err)
}

// A request/response exchange keeps the output bounded while the client
// does not read: WriteData stops at MaxOutput.
func TestServerConnOutputBounded(t *testing.T) {
	p := newPeer(t, ServerConfig{MaxOutput: 32 << 10})
	p.noRead = true
	p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	p.fr.WriteWindowUpdate(0, 1<<30)
	for id := uint32(1); id < 40; id += 2 {
		p.headers(id, p.get(), true)
	}
	p.flush()
	for id := uint32(1); id < 40; id += 2 {
		require.NoError(t, p.c.WriteHeaders(id, []HeaderField{{Name: ":status", Value: "200"}}, false))
		p.c.WriteData(id, make([]byte, 100000), true)
	}
	require.Less(t, len(p.c.Output()), 32<<10+40*30)
}

// A client reading many large responses at once answers all their data
// with WINDOW_UPDATEs after we sent it: Go's client, whose windows let
// it take megabytes per stream, sends one per 4 KiB read, for the
// stream and for the connection. That is no flood, however far the
// updates trail the data. (Found by examples/soak.)
func TestServerConnWindowUpdatesForManyDownloadsAreNoFlood(t *testing.T) {
	p := newPeerRaw(t, ServerConfig{})
	p.toConn.WriteString(ClientPreface)
	require.NoError(t, p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}))
	require.NoError(t, p.fr.WriteWindowUpdate(0, 1<<30-65535))
	p.flush()
	p.frames()
	require.NoError(t, p.fr.WriteSettingsAck())
	const streams, size = 8, 1 << 20
	for i := 0; i < streams; i++ {
		p.headers(uint32(2*i+1), p.get(), true)
	}
	p.flush()
	body := make([]byte, size)
	for i := 0; i < streams; i++ {
		id := uint32(2*i + 1)
		require.NoError(t, p.c.WriteHeaders(id, []HeaderField{{Name: ":status", Value: "200"}}, false))
		for off := 0; off < size; {
			n := p.c.WriteData(id, body[off:], true)
			require.Positive(t, n)
			off += n
			p.drainOutput() // the client reads as it comes
			p.frames()
		}
	}
	for i := 0; i < streams; i++ {
		for k := 0; k < size/4096; k++ {
			require.NoError(t, p.fr.WriteWindowUpdate(uint32(2*i+1), 4096))
			require.NoError(t, p.fr.WriteWindowUpdate(0, 4096))
		}
		p.flush()
		p.frames()
		require.NoError(t, p.err)
	}
	require.Zero(t, p.c.Stats().Floods.WindowUpdate)
}
