package httpproxy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// origin is a test backend: net/http with a few handlers, counting the
// connections it accepts.
type origin struct {
	addr  netip.AddrPort
	conns atomic.Int64
	srv   *http.Server
	name  string
}

func newOrigin(t *testing.T, name string) *origin {
	t.Helper()
	o := &origin{name: name}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s xff=%s xfp=%s fwd=%s id=%s", name, r.Method, r.URL.Path,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"), r.Header.Get("X-Request-Id"))
	})
	mux.HandleFunc("/request-fields", func(w http.ResponseWriter, r *http.Request) {
		r.Header.Write(w) // sorted, one "Name: value" line each
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Read first: Go's server stops reading a request body once the
		// response is flushed.
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprintf(w, "body=%s trailer=%s", b, r.Trailer.Get("X-Sum"))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "done")
	})
	mux.HandleFunc("/size/", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/size/%d", &n)
		w.Write(bytes.Repeat([]byte("x"), n))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	})
	mux.HandleFunc("/hangup", func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o.addr = netip.MustParseAddrPort(ln.Addr().String())
	o.srv = &http.Server{Handler: mux, ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
		}
	}}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

type tester struct {
	t    *testing.T
	w    *session.Worker
	l    *httpproxy.Listener
	addr netip.AddrPort
	url  string
}

// sessionConfig holds the worker settings a test may change.
type sessionConfig struct{ maxPerIP, maxConns int }

func newTester(t *testing.T, cfg httpproxy.Config, backends ...*origin) *tester {
	t.Helper()
	return newTesterWith(t, cfg, sessionConfig{}, backends...)
}

func newTesterWith(t *testing.T, cfg httpproxy.Config, sc sessionConfig, backends ...*origin) *tester {
	t.Helper()
	// An earlier test's idle client connection would be counted now and
	// closed by this test's cleanup: close it before counting.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	// Warnings and errors (a recovered panic, with its stack) go to the
	// test log.
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := session.NewWorker(session.Config{Logger: logger, MaxConnectionsPerIP: sc.maxPerIP, MaxConnections: sc.maxConns})
	require.NoError(t, err)
	runc := make(chan error, 1)
	go func() { runc <- w.Run() }()
	tt := &tester{t: t, w: w, l: httpproxy.NewListener(cfg)}
	require.NoError(t, w.AddCluster("c", backend.RoundRobin))
	for _, o := range backends {
		require.NoError(t, w.AddBackend("c", backend.Backend{ID: o.name, Address: o.addr}))
	}
	require.NoError(t, tt.l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
	tt.addr, err = w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), tt.l, session.ListenConfig{})
	require.NoError(t, err)
	tt.url = "http://" + tt.addr.String()
	t.Cleanup(func() {
		w.HardStop()
		require.NoError(t, <-runc)
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		deadline := time.Now().Add(5 * time.Second)
		for (runtime.NumGoroutine() > gs || openFDs(t) != fds) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if !assert.LessOrEqual(t, runtime.NumGoroutine(), gs, "goroutines leaked") {
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
		if !assert.Equal(t, fds, openFDs(t), "descriptors leaked") && runtime.GOOS == "linux" {
			ents, _ := os.ReadDir("/proc/self/fd")
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				t.Logf("fd %s -> %s", e.Name(), l)
			}
		}
	})
	t.Cleanup(func() {
		// Before the stop (cleanups run last-in first-out).
		st, err := w.Status()
		if err == nil {
			assert.Zero(t, st.Panics, "a session panicked")
		}
	})
	return tt
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func openFDs(t *testing.T) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func (tt *tester) client() *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	tt.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	return resp, string(body)
}

// raw sends bytes on a fresh connection and returns everything the proxy
// sends back until it closes.
func (tt *tester) raw(req string) string {
	tt.t.Helper()
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(tt.t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, req)
	require.NoError(tt.t, err)
	out, _ := io.ReadAll(c)
	return string(out)
}

func statusOf(resp string) int {
	var code int
	fmt.Sscanf(resp, "HTTP/1.1 %d", &code)
	return code
}

func TestRoundRobinAndKeepAliveBothSides(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{}, a, b)
	c := tt.client()
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		resp, body := get(t, c, tt.url+"/x")
		require.Equal(t, 200, resp.StatusCode, body)
		seen[resp.Header.Get("X-Backend")]++
		assert.Len(t, resp.Header.Get("X-Request-Id"), 16)
		assert.Contains(t, body, "xff=127.0.0.1")
		assert.Contains(t, body, "xfp=http")
		assert.Contains(t, body, "fwd=for=127.0.0.1;proto=http")
	}
	assert.Equal(t, map[string]int{"a": 10, "b": 10}, seen)
	// One client connection carried all 20; each backend got one
	// connection that was reused from the pool.
	st := tt.l.Stats()
	assert.EqualValues(t, 20, st.Requests)
	assert.LessOrEqual(t, a.conns.Load()+b.conns.Load(), int64(4))
	assert.GreaterOrEqual(t, st.ReusedBackend, uint64(16))
}

func TestRequestBodiesBothFramings(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	c := tt.client()
	payload := make([]byte, 300<<10)
	rand.Read(payload)
	resp, err := c.Post(tt.url+"/echo", "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, bytes.Equal(payload, got), "Content-Length body echoed")
	// Chunked: an io.Reader of unknown length.
	resp, err = c.Post(tt.url+"/echo", "application/octet-stream", io.MultiReader(bytes.NewReader(payload[:1000]), bytes.NewReader(payload[1000:])))
	require.NoError(t, err)
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, bytes.Equal(payload, got), "chunked body echoed")
	// A large response.
	_, body := get(t, c, tt.url+"/size/2000000")
	assert.Len(t, body, 2000000)
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	out := tt.raw("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	i1, i2, i3 := strings.Index(out, "GET /one"), strings.Index(out, "GET /two"), strings.Index(out, "GET /three")
	require.True(t, i1 >= 0 && i2 > i1 && i3 > i2, "in order: %q", out)
	assert.Equal(t, 3, strings.Count(out, "HTTP/1.1 200"))
	assert.Contains(t, out, "Connection: close")
}

func TestAnswers(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{MaxBody: 1000, BackTimeout: 300 * time.Millisecond, RequestTimeout: 300 * time.Millisecond}, o)
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "deny", Host: "deny.test", Action: router.Action{Kind: router.Deny}}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "redir", Host: "redir.test", Action: router.Action{Kind: router.Redirect, RedirectScheme: "https", Status: 308}}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "none", Host: "none.test", Action: router.Action{Cluster: "empty"}}))
	require.NoError(t, tt.w.AddCluster("empty", backend.RoundRobin))
	require.NoError(t, tt.l.RemoveFrontend(tt.w, "all"))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "o", Host: "o.test", Action: router.Action{Cluster: "c"}}))

	cases := []struct {
		name, req string
		status    int
		contains  string
	}{
		{"no route", "GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n", 404, ""},
		{"no route with a body closes", "POST / HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: 40\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: o.test\r\n\r\n", 404, "Connection: close"},
		{"deny", "GET / HTTP/1.1\r\nHost: deny.test\r\nConnection: close\r\n\r\n", 401, ""},
		{"redirect", "GET /a?b=c HTTP/1.1\r\nHost: redir.test:8080\r\nConnection: close\r\n\r\n", 308, "Location: https://redir.test/a?b=c"},
		{"no backend", "GET / HTTP/1.1\r\nHost: none.test\r\n\r\n", 503, "Connection: close"},
		{"malformed", "GET / HTTP/1.1\r\nHost: o.test\r\nBad Header: x\r\n\r\n", 400, "Connection: close"},
		{"smuggling CL+TE", "POST / HTTP/1.1\r\nHost: o.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"too large body", "POST /echo HTTP/1.1\r\nHost: o.test\r\nContent-Length: 5000\r\n\r\n", 413, ""},
		{"head too large", "GET / HTTP/1.1\r\nHost: o.test\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n", 431, ""},
		{"uri too long", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: o.test\r\n\r\n", 414, ""},
		{"backend hangs up", "GET /hangup HTTP/1.1\r\nHost: o.test\r\n\r\n", 502, ""},
		{"backend too slow", "GET /slow HTTP/1.1\r\nHost: o.test\r\n\r\n", 504, ""},
		{"client too slow", "GET / HTTP/1.1\r\nHost: o.t", 408, ""},
		{"bad version", "GET / HTTP/2.0\r\nHost: o.test\r\n\r\n", 505, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := tt.raw(tc.req)
			assert.Equal(t, tc.status, statusOf(out), "%q", out)
			assert.Contains(t, out, "Content-Length: ")
			assert.Contains(t, out, "X-Request-Id: ")
			assert.Contains(t, out, tc.contains)
		})
	}
	st := tt.l.Stats()
	assert.EqualValues(t, 2, st.Answers[404])
	assert.EqualValues(t, 1, st.Answers[504])
}

func TestSlowlorisHoldsNoBuffer(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{RequestTimeout: 500 * time.Millisecond}, o)
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	r := bufio.NewReader(c)
	for _, part := range []string{"GET / HT", "TP/1.1\r\n", "Host: o", ".test\r\n"} {
		_, err := io.WriteString(c, part)
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
		st, err := tt.w.Status()
		require.NoError(t, err)
		assert.Zero(t, st.BuffersLent, "a trickling client holds no pool buffer")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 408 Request Timeout\r\n", line)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestPooledConnectionClosedByServerIsRetried(t *testing.T) {
	// A backend that answers the first request of each connection and
	// closes a connection when a second request arrives on it: the race
	// of a server closing an idle keep-alive connection just as the proxy
	// reuses it, made deterministic.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns atomic.Int64
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(r)
					if err != nil || n == 1 {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-served })
	o := &origin{name: "flaky", addr: netip.MustParseAddrPort(ln.Addr().String()), srv: &http.Server{}}
	tt := newTester(t, httpproxy.Config{}, o)
	c := tt.client()
	resp, body := get(t, c, tt.url+"/a")
	require.Equal(t, 200, resp.StatusCode, body)
	resp, body = get(t, c, tt.url+"/b")
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, "ok", body)
	st := tt.l.Stats()
	assert.EqualValues(t, 1, st.ReusedBackend, "the second request went on the pooled connection")
	assert.EqualValues(t, 1, st.Retried, "and was sent again on a fresh one")
	assert.EqualValues(t, 2, conns.Load())
}
