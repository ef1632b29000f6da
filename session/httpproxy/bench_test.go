package httpproxy_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// rawBackend answers every request on a connection with a fixed
// response, allocating nothing per request, so that a benchmark's
// allocations are the proxy's.
func rawBackend(b *testing.B) *origin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
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
			}()
		}
	}()
	return &origin{name: "raw", addr: netip.MustParseAddrPort(ln.Addr().String())}
}

// benchmarkProxied sends b.N keep-alive requests through the proxy, one
// at a time, and reports the allocations per request (the client and
// the backend allocate nothing per request).
func benchmarkProxied(b *testing.B, cfg httpproxy.Config) {
	tt := newTester(&testing.T{}, cfg, rawBackend(b))
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(b, err)
	defer c.Close()
	req := []byte("GET /x HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\n\r\n")
	buf := make([]byte, 4096)
	do := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
			m, err := c.Read(buf[n:])
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			n += m
		}
	}
	for i := 0; i < 100; i++ { // warm the pools
		do()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		do()
	}
	b.StopTimer()
	tt.w.HardStop()
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
