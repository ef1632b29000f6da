package httpproxy_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// rawBackend answers every request on a connection with a fixed
// response, allocating nothing per request, so that a benchmark's
// allocations are the proxy's.
func rawBackend(tb testing.TB) *origin {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return rawOrigin(tb, "raw", func(c net.Conn) {
		buf := make([]byte, 16<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				n = copy(buf, buf[i+4:n])
			}
		}
	})
}

// rawOrigin is a backend written by hand for what net/http will not do
// (misbehave, or answer without allocating): serve runs for each
// connection it accepts, which is closed when serve returns; the
// listener closes when the test ends.
func rawOrigin(tb testing.TB, name string, serve func(c net.Conn)) *origin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return &origin{name: name, addr: netip.MustParseAddrPort(ln.Addr().String())}
}

// proxiedClient starts a proxy before rawBackend and returns a function
// that sends one keep-alive request through it and reads the answer.
func proxiedClient(tb testing.TB, cfg httpproxy.Config) (do func(), stop func()) {
	t, isTest := tb.(*testing.T)
	if !isTest {
		t = &testing.T{} // a benchmark: the tester's cleanups are for tests; stop stops the worker
	}
	tt := newTester(t, cfg, rawBackend(tb))
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(tb, err)
	req := []byte("GET /x HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\n\r\n")
	buf := make([]byte, 4096)
	do = func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
			m, err := c.Read(buf[n:])
			if err != nil && err != io.EOF {
				tb.Fatal(err)
			}
			n += m
		}
	}
	return do, func() {
		c.Close()
		if !isTest {
			tt.w.HardStop()
		}
	}
}

// benchmarkProxied sends b.N keep-alive requests through the proxy, one
// at a time, and reports the allocations per request (the client and
// the backend allocate nothing per request).
func benchmarkProxied(b *testing.B, cfg httpproxy.Config) {
	do, stop := proxiedClient(b, cfg)
	defer stop()
	for i := 0; i < 100; i++ { // warm the pools
		do()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		do()
	}
	b.StopTimer()
}

// BenchmarkProxiedRequest is the whole proxy's cost per HTTP/1.1
// keep-alive request, without hooks and with one that does nothing or
// reads the path.
func BenchmarkProxiedRequest(b *testing.B) {
	b.Run("no-hook", func(b *testing.B) { benchmarkProxied(b, httpproxy.Config{}) })
	b.Run("noop-hook", func(b *testing.B) {
		benchmarkProxied(b, httpproxy.Config{Hooks: []httpproxy.Hooks{{Request: func(*httpproxy.Request) {}}}})
	})
	b.Run("path-hook", func(b *testing.B) {
		benchmarkProxied(b, httpproxy.Config{Hooks: []httpproxy.Hooks{{Request: func(r *httpproxy.Request) { _ = r.Path() }}}})
	})
	b.Run("all-phases-noop", func(b *testing.B) {
		benchmarkProxied(b, httpproxy.Config{Hooks: []httpproxy.Hooks{{
			Request:  func(*httpproxy.Request) {},
			Upstream: func(*httpproxy.Request) {},
			Response: func(*httpproxy.Request, *httpproxy.Response) {},
			Done:     func(*httpproxy.Request, *httpproxy.Outcome) {},
		}}})
	})
}

// TestProxiedRequestDoesNotAllocate fails when a steady-state proxied
// HTTP/1.1 keep-alive request allocates, with no hook or with no-op
// hooks in every phase: a regression cannot land silently. The client
// and the backend allocate nothing per request, so what is counted is
// the proxy's (an average under 1 tolerates the runtime's own rare
// background allocations, never one per request).
func TestProxiedRequestDoesNotAllocate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a normal build")
	}
	for name, cfg := range map[string]httpproxy.Config{
		"no hook": {},
		"no-op hooks": {Hooks: []httpproxy.Hooks{{
			Request:  func(*httpproxy.Request) {},
			Upstream: func(*httpproxy.Request) {},
			Response: func(*httpproxy.Request, *httpproxy.Response) {},
			Done:     func(*httpproxy.Request, *httpproxy.Outcome) {},
		}}},
	} {
		t.Run(name, func(t *testing.T) {
			do, stop := proxiedClient(t, cfg)
			defer stop()
			for i := 0; i < 200; i++ { // warm the pools
				do()
			}
			allocs := testing.AllocsPerRun(2000, do)
			assert.Less(t, allocs, 0.5, "allocations per proxied request")
		})
	}
}

// h2ProxiedClient is proxiedClient over HTTP/2 (h2c, prior knowledge):
// each call of do opens a stream with a GET, and reads until its
// response ends. The frames are written and read by hand, allocating
// nothing per stream: what is counted is the proxy's.
func h2ProxiedClient(tb testing.TB, cfg httpproxy.Config) (do func(), stop func()) {
	t, isTest := tb.(*testing.T)
	if !isTest {
		t = &testing.T{}
	}
	cfg.H2C = true
	tt := newTester(t, cfg, rawBackend(tb))
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(tb, err)
	// The preface, empty SETTINGS, and a connection window that cannot
	// run out in a test.
	start := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	start = append(start, 0, 0, 0, 4, 0, 0, 0, 0, 0)
	start = append(start, 0, 0, 4, 8, 0, 0, 0, 0, 0, 0x7f, 0xff, 0, 0)
	_, err = c.Write(start)
	require.NoError(tb, err)
	// HEADERS with END_STREAM|END_HEADERS: :method GET, :scheme http,
	// :path /, from HPACK's static table, and :authority bench, added to
	// the dynamic table by the first stream and indexed (62) after, as
	// a browser does.
	first := []byte{0x82, 0x86, 0x84, 0x41, 0x05, 'b', 'e', 'n', 'c', 'h'}
	headers := append([]byte{0, 0, byte(len(first)), 1, 0x5, 0, 0, 0, 0}, first...)
	next := []byte{0, 0, 4, 1, 0x5, 0, 0, 0, 0, 0x82, 0x86, 0x84, 0xbe}
	settingsAck := []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}
	buf := make([]byte, 64<<10)
	n := 0
	id := uint32(1)
	do = func() {
		if id > 1 {
			headers = next
		}
		headers[5], headers[6], headers[7], headers[8] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
		if _, err := c.Write(headers); err != nil {
			tb.Fatal(err)
		}
		for ended := false; !ended; {
			for n < 9 || n < 9+int(buf[0])<<16|int(buf[1])<<8|int(buf[2]) {
				m, err := c.Read(buf[n:])
				if err != nil {
					tb.Fatal(err)
				}
				n += m
			}
			size := 9 + (int(buf[0])<<16 | int(buf[1])<<8 | int(buf[2]))
			typ, flags := buf[3], buf[4]
			sid := uint32(buf[5]&0x7f)<<24 | uint32(buf[6])<<16 | uint32(buf[7])<<8 | uint32(buf[8])
			switch {
			case typ == 4 && flags&1 == 0: // SETTINGS
				if _, err := c.Write(settingsAck); err != nil {
					tb.Fatal(err)
				}
			case typ == 7: // GOAWAY
				tb.Fatalf("GOAWAY from the proxy")
			case typ == 3 && sid == id: // RST_STREAM
				tb.Fatalf("stream %d reset", id)
			case (typ == 0 || typ == 1) && sid == id && flags&1 != 0:
				ended = true
			}
			n = copy(buf, buf[size:n])
		}
		id += 2
	}
	return do, func() {
		c.Close()
		if !isTest {
			tt.w.HardStop()
		}
	}
}

// BenchmarkProxiedH2Stream is the whole proxy's cost per HTTP/2 stream
// (a GET on an h2c connection, to an HTTP/1.1 backend over a pooled
// connection), one stream at a time.
func BenchmarkProxiedH2Stream(b *testing.B) {
	do, stop := h2ProxiedClient(b, httpproxy.Config{})
	defer stop()
	for i := 0; i < 100; i++ {
		do()
	}
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}

// An HTTP/2 stream through the proxy allocates nothing once the worker
// has warmed up: its session is reused, its request array kept, its
// response fields interned. A regression cannot land silently.
func TestProxiedH2StreamDoesNotAllocate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a normal build")
	}
	do, stop := h2ProxiedClient(t, httpproxy.Config{})
	defer stop()
	for i := 0; i < 200; i++ {
		do()
	}
	allocs := testing.AllocsPerRun(2000, do)
	assert.Less(t, allocs, 0.5, "allocations per proxied HTTP/2 stream")
}
