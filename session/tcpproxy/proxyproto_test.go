package tcpproxy_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

var (
	clientSrc = netip.MustParseAddrPort("192.0.2.10:4242")
	clientDst = netip.MustParseAddrPort("198.51.100.1:443")
)

func headerV1(t *testing.T, src, dst netip.AddrPort) []byte {
	t.Helper()
	h := proxyproto.NewTCP(src, dst)
	b, err := h.AppendV1(nil)
	require.NoError(t, err)
	return b
}

func headerV2(t *testing.T, src, dst netip.AddrPort, tlvs ...proxyproto.TLV) []byte {
	t.Helper()
	h := proxyproto.NewTCP(src, dst)
	h.TLVs = tlvs
	b, err := h.AppendV2(nil)
	require.NoError(t, err)
	return b
}

// readHeader waits for the header the PROXY-parsing backend reports.
func readHeader(t *testing.T, hdrs <-chan proxyproto.Header) proxyproto.Header {
	t.Helper()
	select {
	case h := <-hdrs:
		require.NotZero(t, h.Version, "the backend could not parse a PROXY header")
		return h
	case <-time.After(3 * time.Second):
		t.Fatal("the backend got no PROXY header")
		return proxyproto.Header{}
	}
}

// finish half-closes the client and expects the rest of the echo, then
// EOF.
func finish(t *testing.T, c *net.TCPConn, want string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	require.NoError(t, c.CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
}

// 11. PROXY protocol, received and sent.
func TestProxyProtocol(t *testing.T) {
	t.Run("expect v1, header and payload in one write", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		be := e.server(echo)
		e.addBackend("c", "a", be.addr)
		l, addr := e.listen(tcpproxy.Config{ExpectProxy: true})
		c := e.dial(addr)
		_, err := c.Write(append(headerV1(t, clientSrc, clientDst), "payload"...))
		require.NoError(t, err)
		finish(t, c, "payload") // the header was stripped
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.Zero(t, st.ProxyRejected)
		assert.EqualValues(t, len("payload"), st.BytesOut)
	})

	t.Run("expect v2, send v2", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		hdrs := make(chan proxyproto.Header, 1)
		be := e.server(proxyEcho(hdrs))
		e.addBackend("c", "a", be.addr)
		_, addr := e.listen(tcpproxy.Config{ExpectProxy: true, SendProxy: tcpproxy.SendV2})
		c := e.dial(addr)
		_, err := c.Write(append(headerV2(t, clientSrc, clientDst), "hello"...))
		require.NoError(t, err)
		h := readHeader(t, hdrs)
		assert.Equal(t, proxyproto.V2, h.Version)
		assert.Equal(t, proxyproto.Proxy, h.Command)
		assert.Equal(t, clientSrc, h.Source, "the source the client's header gave")
		assert.Equal(t, clientDst, h.Destination, "the destination the client's header gave, as HAProxy sends it")
		finish(t, c, "hello")
	})

	t.Run("expect v1 from IPv6, send v1", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		hdrs := make(chan proxyproto.Header, 1)
		be := e.server(proxyEcho(hdrs))
		e.addBackend("c", "a", be.addr)
		_, addr := e.listen(tcpproxy.Config{ExpectProxy: true, SendProxy: tcpproxy.SendV1})
		src := netip.MustParseAddrPort("[2001:db8::7]:5000")
		c := e.dial(addr)
		// A v1 header may not mix families; the one sent on must not
		// either, so an IPv6 source and an IPv4 destination go as TCP6.
		_, err := c.Write(append(headerV1(t, src, netip.MustParseAddrPort("[::ffff:192.0.2.1]:443")), "six"...))
		require.NoError(t, err)
		h := readHeader(t, hdrs)
		assert.Equal(t, proxyproto.V1, h.Version)
		assert.Equal(t, proxyproto.TCP6, h.Transport)
		assert.Equal(t, src, h.Source)
		assert.Equal(t, netip.MustParseAddrPort("[::ffff:192.0.2.1]:443"), h.Destination, "the client's header's destination")
		finish(t, c, "six")
	})

	t.Run("no expect, send v1", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		hdrs := make(chan proxyproto.Header, 1)
		be := e.server(proxyEcho(hdrs))
		e.addBackend("c", "a", be.addr)
		_, addr := e.listen(tcpproxy.Config{SendProxy: tcpproxy.SendV1})
		c := e.dial(addr)
		// The header goes first even before the client says anything.
		h := readHeader(t, hdrs)
		assert.Equal(t, proxyproto.V1, h.Version)
		assert.Equal(t, proxyproto.TCP4, h.Transport)
		assert.Equal(t, netip.MustParseAddrPort(c.LocalAddr().String()), h.Source, "the client's real address")
		assert.Equal(t, addr, h.Destination, "the proxy's listening address")
		roundTrip(t, c, "data after the header")
		finish(t, c, "")
	})

	t.Run("expect, relay", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		be := e.server(echo)
		e.addBackend("c", "a", be.addr)
		_, addr := e.listen(tcpproxy.Config{ExpectProxy: true, SendProxy: tcpproxy.Relay})
		hdr := headerV2(t, clientSrc, clientDst,
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("example.com")},
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_UNIQUE_ID, Value: []byte("id-1234")},
			proxyproto.TLV{Type: proxyproto.PP2_TYPE_CRC32C},
		)
		c := e.dial(addr)
		_, err := c.Write(append(hdr, "relayed"...))
		require.NoError(t, err)
		finish(t, c, string(hdr)+"relayed") // the echo returns the header as the backend got it
	})

	t.Run("header, payload and FIN at once", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		be := e.server(echo)
		e.addBackend("c", "a", be.addr)
		l, addr := e.listen(tcpproxy.Config{ExpectProxy: true})
		c := e.dial(addr)
		_, err := c.Write(append(headerV2(t, clientSrc, clientDst), "last words"...))
		require.NoError(t, err)
		finish(t, c, "last words") // CloseWrite right behind the bytes
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.Zero(t, st.Reset)
	})

	// The first read is limited to the buffer minus the room kept for a
	// header to send: the payload that follows fills it, the rest is
	// read by the pipe.
	for mode, name := range map[tcpproxy.ProxyMode]string{tcpproxy.SendV1: "send v1", tcpproxy.SendV2: "send v2", tcpproxy.Relay: "relay"} {
		t.Run("large early payload, "+name, func(t *testing.T) {
			e := newEnv(t, session.Config{})
			hdrs := make(chan proxyproto.Header, 1)
			be := e.server(proxyEcho(hdrs))
			e.addBackend("c", "a", be.addr)
			_, addr := e.listen(tcpproxy.Config{ExpectProxy: true, SendProxy: mode})
			payload := randBytes(rand.New(rand.NewPCG(5, 5)), 100<<10)
			c := e.dial(addr)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(append(headerV1(t, clientSrc, clientDst), payload...))
				if err == nil {
					err = c.CloseWrite()
				}
				werr <- err
			}()
			h := readHeader(t, hdrs)
			assert.Equal(t, clientSrc, h.Source)
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			require.NoError(t, <-werr)
			assert.True(t, bytes.Equal(payload, got), "payload intact: sent %d, got %d", len(payload), len(got))
		})
	}

	t.Run("header a byte at a time", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			hdr  []byte
		}{
			{"v1", headerV1(t, clientSrc, clientDst)},
			{"v2", headerV2(t, clientSrc, clientDst, proxyproto.TLV{Type: proxyproto.PP2_TYPE_NOOP, Value: []byte{0, 0, 0}})},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, session.Config{})
				hdrs := make(chan proxyproto.Header, 1)
				be := e.server(proxyEcho(hdrs))
				e.addBackend("c", "a", be.addr)
				l, addr := e.listen(tcpproxy.Config{ExpectProxy: true, SendProxy: tcpproxy.SendV2})
				c := e.dial(addr)
				c.SetNoDelay(true)
				for i := range tc.hdr {
					_, err := c.Write(tc.hdr[i : i+1])
					require.NoError(t, err)
					time.Sleep(500 * time.Microsecond) // pacing: separate segments
				}
				_, err := c.Write([]byte("after"))
				require.NoError(t, err)
				h := readHeader(t, hdrs)
				assert.Equal(t, clientSrc, h.Source)
				finish(t, c, "after")
				st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
				assert.Zero(t, st.ProxyRejected)
			})
		}
	})

	t.Run("garbage", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			bytes string
			fin   bool
		}{
			{"http request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
			{"bad v1 line", "PROXY TCP4 300.1.1.1 192.0.2.1 1 2\r\npayload", false},
			{"truncated header then FIN", "PROXY TCP4 192.0.2.10 ", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, session.Config{})
				be := e.server(echo)
				e.addBackend("c", "a", be.addr)
				l, addr := e.listen(tcpproxy.Config{ExpectProxy: true})
				c := e.dial(addr)
				_, err := c.Write([]byte(tc.bytes))
				require.NoError(t, err)
				if tc.fin {
					require.NoError(t, c.CloseWrite())
				}
				got := requireClosed(t, c, 2*time.Second, "a client without a valid header")
				assert.Empty(t, got)
				st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
				assert.EqualValues(t, 1, st.ProxyRejected)
				assert.Zero(t, st.ProxyTimedOut)
				assert.Zero(t, be.accepted.Load(), "nothing reaches the backend")
			})
		}
	})

	t.Run("no header in time", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		be := e.server(echo)
		e.addBackend("c", "a", be.addr)
		l, addr := e.listen(tcpproxy.Config{ExpectProxy: true, HeaderTimeout: 200 * time.Millisecond})
		start := time.Now()
		c := e.dial(addr)
		requireClosed(t, c, 2*time.Second, "a silent client")
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
		assert.Less(t, elapsed, 1500*time.Millisecond)
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.EqualValues(t, 1, st.ProxyTimedOut)
		assert.Zero(t, st.ProxyRejected)
		assert.Zero(t, st.FrontTimeouts)
		assert.Zero(t, be.accepted.Load(), "nothing reaches the backend")
	})

	t.Run("config errors", func(t *testing.T) {
		_, err := tcpproxy.NewListener(tcpproxy.Config{Cluster: "c", SendProxy: tcpproxy.Relay})
		assert.ErrorIs(t, err, tcpproxy.ErrRelayNeedsExpect)
		_, err = tcpproxy.NewListener(tcpproxy.Config{Cluster: "c", SendProxy: tcpproxy.Relay + 1, ExpectProxy: true})
		assert.Error(t, err, "unknown mode")
		_, err = tcpproxy.NewListener(tcpproxy.Config{Cluster: "c", SendProxy: tcpproxy.Relay, ExpectProxy: true})
		assert.NoError(t, err)
	})
}

// The PROXY header's early payload counts as client-to-backend bytes.
func TestProxyProtocolEarlyPayloadCounted(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{ExpectProxy: true})
	c := e.dial(addr)
	_, err := c.Write(append(headerV1(t, clientSrc, clientDst), "payload"...))
	require.NoError(t, err)
	finish(t, c, "payload")
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, len("payload"), st.BytesOut)
	assert.EqualValues(t, len("payload"), st.BytesIn, "BytesIn (client to backend) must count the payload read with the PROXY header")
}
