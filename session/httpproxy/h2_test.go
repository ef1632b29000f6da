package httpproxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// h2Client is Go's HTTP/2 client: over TLS (ALPN h2) for an HTTPS
// fixture, or h2c with prior knowledge.
func h2Client(t *testing.T, f *httpsFixture) *http.Client {
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func h2cClient(t *testing.T) *http.Client {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// h2Behaviour runs the same checks over TLS and over h2c.
func h2Behaviour(t *testing.T, c *http.Client, base string, wantProto string) {
	t.Run("get", func(t *testing.T) {
		resp, body := get(t, c, base+"/x")
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Equal(t, "HTTP/2.0", resp.Proto)
		assert.Contains(t, body, "a GET /x")
		assert.Contains(t, body, "xfp="+wantProto)
		assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	})
	t.Run("concurrent streams", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				resp, err := c.Get(fmt.Sprintf("%s/size/%d", base, 1000*i))
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || len(b) != 1000*i {
					errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(b), err)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("large bodies both ways", func(t *testing.T) {
		resp, body := get(t, c, base+"/size/5000000")
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, 5000000, len(body))
		payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB, beyond every window
		resp, err := c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(payload))
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.True(t, bytes.Equal(payload, got), "echoed %d of %d bytes", len(got), len(payload))
	})
	t.Run("request and response trailers", func(t *testing.T) {
		req, _ := http.NewRequest("POST", base+"/trailers", strings.NewReader("hello"))
		req.Trailer = http.Header{"X-Sum": {"42"}}
		req.ContentLength = -1
		resp, err := c.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, "body=hello trailer=42", string(b))
		assert.Equal(t, "done", resp.Trailer.Get("X-Checksum"))
	})
	t.Run("the proxy's own answers", func(t *testing.T) {
		resp, _ := get(t, c, base+"/hangup")
		assert.Equal(t, 502, resp.StatusCode)
		resp, _ = get(t, c, base+"/x")
		assert.Equal(t, 200, resp.StatusCode, "the connection goes on after a failed stream")
	})
}

func TestH2OverTLS(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	c := h2Client(t, f)
	h2Behaviour(t, c, f.url, "https")
	assert.EqualValues(t, 1, f.l.Stats().H2Conns, "every stream on one connection")
}

func TestH2CPriorKnowledge(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	h2Behaviour(t, h2cClient(t), tt.url, "http")
	// HTTP/1.1 still works on the same listener.
	resp, body := get(t, tt.client(), tt.url+"/x")
	assert.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "HTTP/1.1", resp.Proto)
}

func TestH2Curl(t *testing.T) {
	curl := tool(t, "curl")
	f := newHTTPS(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	ca := writePEM(t, f.local)
	out, err := exec.Command(curl, "-sS", "--http2", "--cacert", ca, "-w", "\n%{http_version}", f.url+"/tls").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "a GET /tls")
	assert.True(t, strings.HasSuffix(string(out), "\n2"), "curl spoke HTTP/2: %q", out)

	h2c := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "b"))
	// One URL per run: curl 7.88 fails its second request on a reused
	// prior-knowledge connection ("Error in the HTTP2 framing layer")
	// against Go's own h2c server too, before sending it.
	for _, path := range []string{"/h2c", "/again"} {
		out, err = exec.Command(curl, "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}", h2c.url+path).CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "b GET "+path)
		assert.True(t, strings.HasSuffix(string(out), "\n2"), "curl spoke HTTP/2: %q", out)
	}
}

func TestH2Load(t *testing.T) {
	h2load := tool(t, "h2load")
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	out, err := exec.Command(h2load, "-n", "2000", "-c", "4", "-m", "10", tt.url+"/size/100").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "2000 succeeded, 0 failed, 0 errored", string(out))
}

// h2specBinary finds h2spec on PATH or in GOPATH/bin.
func h2specBinary(t *testing.T) string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := strings.TrimSpace(string(gp)) + "/bin/h2spec"
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return tool(t, "h2spec") // skips, or fails under SLUICE_REQUIRE_TOOLS
}

// h2spec, the HTTP/2 conformance suite, against the proxy itself (TLS
// with ALPN, and h2c with prior knowledge): every case of the default
// run and of the strict run must pass.
func TestH2Spec(t *testing.T) {
	bin := h2specBinary(t)
	for _, mode := range []string{"tls", "h2c"} {
		// One proxy per mode, in its own subtest: a tester checks that its
		// goroutines and descriptors are gone at its end, which another
		// proxy's pooled backend connections would upset.
		t.Run(mode, func(t *testing.T) {
			var args []string
			if mode == "tls" {
				f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
				args = []string{"-t", "-k", "-p", fmt.Sprint(f.addr.Port())}
			} else {
				h2c := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "b"))
				args = []string{"-p", fmt.Sprint(h2c.addr.Port())}
			}
			for _, run := range []struct {
				name string
				args []string
				want string
			}{
				{"default", nil, "145 tests, 145 passed"},
				{"strict", []string{"-S"}, "146 tests, 146 passed"},
			} {
				all := append(append([]string{"-h", "127.0.0.1", "-o", "3"}, run.args...), args...)
				out, _ := exec.Command(bin, all...).CombinedOutput()
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				last := lines[len(lines)-1]
				t.Logf("h2spec %s %s: %s", mode, run.name, last)
				if !strings.Contains(last, run.want) {
					i := strings.Index(string(out), "Failures:")
					if i < 0 {
						i = 0
					}
					t.Errorf("h2spec %s %s: %s\n%s", mode, run.name, last, string(out)[i:])
				}
			}
		})
	}
}

// rawH2 is a hand-driven HTTP/2 client for abuse: x/net/http2's Framer
// over a prior-knowledge connection.
type rawH2 struct {
	t  *testing.T
	c  net.Conn
	fr *http2.Framer
	hb bytes.Buffer
	he *hpack.Encoder
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	r := &rawH2{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.he = hpack.NewEncoder(&r.hb)
	_, err = c.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	require.NoError(t, r.fr.WriteSettings())
	return r
}

func (r *rawH2) headers(id uint32, path string, end bool) {
	r.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":path", path}, {":scheme", "http"}, {":authority", "x"}} {
		r.he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	require.NoError(r.t, r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hb.Bytes(), EndStream: end, EndHeaders: true}))
}

// goAway reads frames until a GOAWAY and returns its code.
func (r *rawH2) goAway() http2.ErrCode {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		require.NoError(r.t, err, "no GOAWAY before the connection ended")
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g.ErrCode
		}
	}
}

// Rapid reset (CVE-2023-44487) through the whole proxy: streams opened
// and reset at once end the connection with ENHANCE_YOUR_CALM, counted,
// and leave no stream session behind (the tester checks descriptors and
// goroutines at the end).
func TestH2RapidResetThroughTheProxy(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	r := dialRawH2(t, tt.addr.String())
	go func() {
		for id := uint32(1); id < 2000; id += 2 {
			r.headers(id, "/slow", false)
			if r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	assert.Equal(t, http2.ErrCodeEnhanceYourCalm, r.goAway())
	require.Eventually(t, func() bool { return tt.l.Stats().H2Floods == 1 }, 5*time.Second, time.Millisecond)
	st, err := tt.w.Status()
	require.NoError(t, err)
	t.Logf("worker after the flood: %+v", st)
}

// A PING flood gets the same answer.
func TestH2PingFloodThroughTheProxy(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	r := dialRawH2(t, tt.addr.String())
	go func() {
		for i := 0; i < 5000; i++ {
			if r.fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
		}
	}()
	assert.Equal(t, http2.ErrCodeEnhanceYourCalm, r.goAway())
	require.Eventually(t, func() bool { return tt.l.Stats().H2Floods == 1 }, 5*time.Second, time.Millisecond)
}

// A connection idle for a second gives back its buffers and its stream
// table; the next requests on it build them again.
func TestH2ConnectionAfterItsIdleShrink(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	c := h2cClient(t)
	for round := range 3 {
		var wg sync.WaitGroup
		for range 4 { // concurrent streams: the table holds several
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, body := get(t, c, tt.url+"/x")
				assert.Equal(t, 200, resp.StatusCode, body)
			}()
		}
		wg.Wait()
		if round < 2 {
			time.Sleep(1200 * time.Millisecond) // past the second that shrinks an idle connection
		}
	}
	assert.EqualValues(t, 1, tt.l.Stats().H2Conns, "one connection all along")
}
