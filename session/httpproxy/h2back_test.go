package httpproxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// h2cOrigin is a backend that speaks only HTTP/2 with prior knowledge:
// Go's http2.Server on each accepted connection.
func h2cOrigin(t *testing.T, name string) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o := &origin{name: name, addr: netip.MustParseAddrPort(ln.Addr().String())}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s xfp=%s", name, r.Proto, r.Method, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	mux.HandleFunc("/size/", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/size/%d", &n)
		w.Write(bytes.Repeat([]byte("y"), n))
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprintf(w, "body=%s trailer=%s", b, r.Trailer.Get("X-Sum"))
		w.Header().Set("X-Checksum", "done")
	})
	// /chat echoes each line as it arrives, flushing: a bidirectional
	// stream.
	mux.HandleFunc("/chat", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Lines")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 4096)
		lines := 0
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				lines += bytes.Count(buf[:n], []byte("\n"))
				w.Write(bytes.ToUpper(buf[:n]))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Lines", fmt.Sprint(lines))
	})
	srv := &http2.Server{}
	var wg sync.WaitGroup
	var conns sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.conns.Add(1)
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(c, &http2.ServeConnOpts{Handler: mux})
				conns.Delete(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return o
}

func newH2BackTester(t *testing.T, cfg httpproxy.Config, o *origin) *tester {
	tt := newTester(t, cfg, o)
	require.NoError(t, httpproxy.SetClusterHTTP2(tt.w, "c", true))
	return tt
}

func TestH2BackendFromHTTP1Clients(t *testing.T) {
	o := h2cOrigin(t, "g")
	tt := newH2BackTester(t, httpproxy.Config{}, o)
	c := tt.client()
	for i := 0; i < 5; i++ {
		resp, body := get(t, c, tt.url+"/x")
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Equal(t, "g HTTP/2.0 GET /x xfp=http", body)
	}
	assert.EqualValues(t, 1, o.conns.Load(), "requests share one HTTP/2 connection")
	resp, body := get(t, c, tt.url+"/size/3000000")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Len(t, body, 3000000)
	payload := bytes.Repeat([]byte("abcdefgh"), 300000)
	resp, err := c.Post(tt.url+"/echo", "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, bytes.Equal(payload, got), "echoed %d of %d", len(got), len(payload))
	// Trailers both ways, through HTTP/1.1 chunked trailers on the client side.
	req, _ := http.NewRequest("POST", tt.url+"/trailers", strings.NewReader("hi"))
	req.Trailer = http.Header{"X-Sum": {"7"}}
	req.ContentLength = -1
	resp, err = c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "body=hi trailer=7", string(b))
	assert.Equal(t, "done", resp.Trailer.Get("X-Checksum"))
	assert.Positive(t, tt.l.Stats().H2BackendStreams)
}

func TestH2BackendConcurrentStreamsFromH2Clients(t *testing.T) {
	o := h2cOrigin(t, "g")
	tt := newH2BackTester(t, httpproxy.Config{H2C: true}, o)
	c := h2cClient(t)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("%s/size/%d", tt.url, 500*i))
			if err != nil {
				bad.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(b) != 500*i {
				bad.Add(1)
			}
		}(i)
	}
	wg.Wait()
	assert.Zero(t, bad.Load())
	assert.LessOrEqual(t, o.conns.Load(), int64(2), "100 streams multiplexed on the backend side too")
}

// A bidirectional stream: each line goes to the backend and its echo
// comes back before the next is sent; the response ends with a trailer.
func TestH2BackendBidirectional(t *testing.T) {
	o := h2cOrigin(t, "g")
	tt := newH2BackTester(t, httpproxy.Config{H2C: true}, o)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", tt.url+"/chat", pr)
	resp, err := h2cClient(t).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 100)
	for i := 0; i < 10; i++ {
		line := fmt.Sprintf("line %d\n", i)
		_, err := pw.Write([]byte(line))
		require.NoError(t, err)
		n, err := io.ReadAtLeast(resp.Body, buf, len(line))
		require.NoError(t, err)
		assert.Equal(t, strings.ToUpper(line), string(buf[:n]))
	}
	pw.Close()
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.Equal(t, "10", resp.Trailer.Get("X-Lines"))
}

// A backend that goes away: the requests get 502 (or succeed on a new
// connection), never hang.
func TestH2BackendDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	tt := newH2BackTester(t, httpproxy.Config{ConnectTimeout: 500 * time.Millisecond}, &origin{name: "gone", addr: addr})
	resp, _ := get(t, tt.client(), tt.url+"/x")
	assert.Equal(t, 503, resp.StatusCode)
}
