package httpproxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// tool finds an outside program, or skips (fails under SLUICE_REQUIRE_TOOLS).
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (SLUICE_REQUIRE_TOOLS is set) but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

func TestCurl(t *testing.T) {
	curl := tool(t, "curl")
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	// Two requests on one connection: curl reuses it when the proxy keeps it.
	out, err := exec.Command(curl, "-sS", "-v", "--max-time", "10", tt.url+"/a", tt.url+"/b").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "o GET /a")
	assert.Contains(t, string(out), "o GET /b")
	assert.Contains(t, string(out), "Re-using existing connection")
	// A 2 MB upload: curl sends Expect: 100-continue for it.
	file := filepath.Join(t.TempDir(), "up")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 128<<10)
	require.NoError(t, os.WriteFile(file, payload, 0o600))
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "-H", "Expect: 100-continue", "--data-binary", "@"+file, tt.url+"/echo").Output()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, out), "upload echoed through the proxy (%d bytes back)", len(out))
	// Chunked upload.
	out, err = exec.Command(curl, "-sS", "--max-time", "20", "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+file, tt.url+"/echo").Output()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, out), "chunked upload echoed (%d bytes back)", len(out))
}

func TestWrkLoadHasNoErrors(t *testing.T) {
	wrk := tool(t, "wrk")
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	out, err := exec.Command(wrk, "-t1", "-c16", "-d2s", tt.url+"/").CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "%s", out)
	n, _ := strconv.Atoi(m[1])
	assert.Greater(t, n, 1000, "%s", out)
	assert.NotContains(t, string(out), "Non-2xx")
	assert.NotContains(t, string(out), "Socket errors")
}

func TestExpect100Continue(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	_, err = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", line, "the interim answer is relayed before the body is sent")
	for line != "\r\n" {
		line, err = r.ReadString('\n')
		require.NoError(t, err)
	}
	_, err = io.WriteString(c, "hello")
	require.NoError(t, err)
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello", string(body))
}

func TestChunkedTrailersBothWays(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	out := tt.raw("POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
	assert.Equal(t, 200, statusOf(out), out)
	assert.Contains(t, out, "body=hello world")
	assert.Contains(t, out, "trailer=11", "the request trailer reached the backend")
	assert.Contains(t, out, "X-Checksum: done", "the response trailer reached the client")
}

// TestSmugglingRejectedNeverForwarded sends ambiguous or malformed
// requests; each gets its error answer and a closed connection, and the
// backend never sees any of them.
func TestSmugglingRejectedNeverForwarded(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	cases := []struct {
		req    string
		status int
	}{
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4a\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400},
		{"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\n X-Leading-Space: a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Bare-CR: a\rb\r\n\r\n", 400},
		{"GET / HTTP/1.1\nHost: x\n\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Del: a\x7fb\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nBad[Name]: a\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
		{"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400},
		{"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"unterminated\r\nhello\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 400},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	before := o.conns.Load()
	for _, tc := range cases {
		out := tt.raw(tc.req)
		if !assert.Equal(t, tc.status, statusOf(out), "%q -> %q", tc.req, out) {
			continue
		}
		assert.Contains(t, out, "Connection: close", "%q", tc.req)
		assert.Equal(t, 1, strings.Count(out, "HTTP/1.1 "), "exactly one answer, then close: %q", tc.req)
	}
	// A bad chunk is found while the body streams, after the head went to
	// the backend (whose connection is then dropped, not pooled); a bad
	// head never reaches it. The last 7 cases are chunk errors.
	assert.LessOrEqual(t, o.conns.Load()-before, int64(7), "only requests whose chunked body broke reached the backend")
}

func TestPerIPLimitAnswers429(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTesterWith(t, httpproxy.Config{}, sessionConfig{maxPerIP: 2}, o)
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", tt.addr.String())
		require.NoError(t, err)
		defer c.Close()
		held = append(held, c)
	}
	require.Eventually(t, func() bool { st, _ := tt.w.Status(); return st.Sessions == 2 }, 5*time.Second, time.Millisecond)
	out := tt.raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Equal(t, 429, statusOf(out), out)
	assert.Contains(t, out, "Retry-After: 1")
	assert.Contains(t, out, "Connection: close")
	held[0].Close()
	require.Eventually(t, func() bool { st, _ := tt.w.Status(); return st.Sessions == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 200, statusOf(tt.raw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
}

func TestExpectProxyOnHTTPListener(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{ExpectProxy: true}, o)
	out := tt.raw("PROXY TCP4 192.0.2.10 127.0.0.1 4242 80\r\nGET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 200, statusOf(out), out)
	assert.Contains(t, out, "xff=192.0.2.10", "the PROXY source is the client")
	// In pieces, with keep-alive after it.
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c.Close()
	for _, part := range []string{"PROXY TCP4 198.51", ".100.7 127.0.0.1 1 2\r\nGET / HT", "TP/1.1\r\nHost: x\r\n\r\n"} {
		_, err := io.WriteString(c, part)
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(body), "xff=198.51.100.7")
	// Garbage instead of a header: closed, counted, not forwarded.
	out = tt.raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Empty(t, out)
	assert.EqualValues(t, 1, tt.l.Stats().ProxyRejected)
}

func TestStickySessionsByCookie(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{StickyCookie: "SRV"}, a, b)
	c := tt.client()
	resp, _ := get(t, c, tt.url+"/")
	first := resp.Header.Get("X-Backend")
	cookie := resp.Header.Get("Set-Cookie")
	require.Equal(t, "SRV="+first+"; Path=/; HttpOnly", cookie)
	// With the cookie, every request goes to the same backend, and no
	// new cookie is set; round robin alone would alternate.
	for i := 0; i < 6; i++ {
		req, _ := http.NewRequest("GET", tt.url+"/", nil)
		req.Header.Set("Cookie", "other=1; SRV="+first+"; more=2")
		resp, err := c.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, first, resp.Header.Get("X-Backend"))
		assert.Empty(t, resp.Header.Get("Set-Cookie"))
	}
	// Its backend gone, the client moves and gets the new cookie.
	require.NoError(t, tt.w.RemoveBackend("c", first))
	req, _ := http.NewRequest("GET", tt.url+"/", nil)
	req.Header.Set("Cookie", "SRV="+first)
	resp, err := c.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	other := resp.Header.Get("X-Backend")
	assert.NotEqual(t, first, other)
	assert.Equal(t, "SRV="+other+"; Path=/; HttpOnly", resp.Header.Get("Set-Cookie"))
}

func TestAccessLog(t *testing.T) {
	o := newOrigin(t, "o")
	var buf syncBuffer
	tt := newTester(t, httpproxy.Config{AccessLog: slog.New(slog.NewTextHandler(&buf, nil))}, o)
	assert.Equal(t, 200, statusOf(tt.raw("GET /logged?q=1 HTTP/1.1\r\nHost: example.test\r\nX-Request-Id: abc123\r\nConnection: close\r\n\r\n")))
	assert.Equal(t, 400, statusOf(tt.raw("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n")))
	require.Eventually(t, func() bool { return strings.Count(buf.String(), "\n") >= 2 }, 5*time.Second, time.Millisecond)
	line := strings.Split(buf.String(), "\n")[0]
	for _, want := range []string{"client=127.0.0.1:", "method=GET", "host=example.test", "path=\"/logged?q=1\"", "status=200",
		"request_id=abc123", "cluster=c", "backend=" + o.addr.String(), "connect=", "response="} {
		assert.Contains(t, line, want)
	}
	assert.NotContains(t, line, "connect=-")
	assert.Contains(t, strings.Split(buf.String(), "\n")[1], "status=400", "answers are logged too")
}

// syncBuffer is a bytes.Buffer safe to write from the loop and read from
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAnswerTemplatesPerListenerAndCluster(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{Answers: map[int]httpproxy.Answer{
		503: {Body: "<h1>listener 503</h1>"},
		400: {ContentType: "application/json", Body: `{"error":"bad request"}`},
	}}, o)
	require.NoError(t, tt.w.AddCluster("empty", backend.RoundRobin))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "e", Host: "empty.test", Action: router.Action{Cluster: "empty"}}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "e2", Host: "empty2.test", Action: router.Action{Cluster: "empty2"}}))
	require.NoError(t, tt.w.AddCluster("empty2", backend.RoundRobin))
	require.NoError(t, httpproxy.SetClusterAnswers(tt.w, "empty2", map[int]httpproxy.Answer{503: {ContentType: "text/plain", Body: "cluster two is resting"}}))

	out := tt.raw("GET / HTTP/1.1\r\nHost: empty.test\r\n\r\n")
	assert.Equal(t, 503, statusOf(out))
	assert.Contains(t, out, "Content-Type: text/html; charset=utf-8")
	assert.True(t, strings.HasSuffix(out, "\r\n\r\n<h1>listener 503</h1>"), out)
	assert.Contains(t, out, "Content-Length: 21\r\n")

	out = tt.raw("GET / HTTP/1.1\r\nHost: empty2.test\r\n\r\n")
	assert.True(t, strings.HasSuffix(out, "cluster two is resting"), "the cluster's template wins: %q", out)

	out = tt.raw("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n")
	assert.Equal(t, 400, statusOf(out))
	assert.Contains(t, out, "Content-Type: application/json")
	assert.True(t, strings.HasSuffix(out, `{"error":"bad request"}`))

	// Per-cluster settings go with their cluster: added again under the
	// same name, it starts from the listener's templates.
	require.NoError(t, tt.w.RemoveCluster("empty2"))
	require.NoError(t, tt.w.AddCluster("empty2", backend.RoundRobin))
	out = tt.raw("GET / HTTP/1.1\r\nHost: empty2.test\r\n\r\n")
	assert.True(t, strings.HasSuffix(out, "<h1>listener 503</h1>"), "the removed cluster's template is gone: %q", out)
}

// Routes belong to their listener: two listeners of one worker route the
// same host to different clusters, and a route added to one is unknown
// to the other.
func TestRoutesPerListener(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{}, a)
	require.NoError(t, tt.w.AddCluster("other", backend.RoundRobin))
	require.NoError(t, tt.w.AddBackend("other", backend.Backend{ID: "b", Address: b.addr}))
	l2 := httpproxy.NewListener(httpproxy.Config{})
	require.NoError(t, l2.AddFrontend(tt.w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "other"}}))
	addr2, err := tt.w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l2, session.ListenConfig{})
	require.NoError(t, err)
	second := &tester{t: t, w: tt.w, l: l2, addr: addr2, url: "http://" + addr2.String()}

	assert.Contains(t, tt.raw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "X-Backend: a")
	assert.Contains(t, second.raw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "X-Backend: b")

	require.NoError(t, l2.AddFrontend(tt.w, router.Frontend{ID: "only2", Host: "only.test", Action: router.Action{Kind: router.Deny}}))
	assert.Equal(t, 401, statusOf(second.raw("GET / HTTP/1.1\r\nHost: only.test\r\nConnection: close\r\n\r\n")))
	assert.Contains(t, tt.raw("GET / HTTP/1.1\r\nHost: only.test\r\nConnection: close\r\n\r\n"), "X-Backend: a", "the first listener has no such route")
	require.NoError(t, tt.w.RemoveListener(addr2))
}

func TestConnectFailureGoesToAnotherBackend(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "dead1", Address: refusedPort(t)}))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "dead2", Address: refusedPort(t)}))
	c := tt.client()
	for i := 0; i < 9; i++ {
		resp, body := get(t, c, tt.url+"/")
		assert.Equal(t, 200, resp.StatusCode, body)
		assert.Equal(t, "o", resp.Header.Get("X-Backend"))
	}
}

func TestPerFrontendHeaderEdits(t *testing.T) {
	o := newOrigin(t, "o")
	o.srv.Handler.(*http.ServeMux).HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Internal", "secret")
		w.Header().Set("Server", "origin")
		io.WriteString(w, "added="+r.Header.Get("X-Tenant")+" removed="+r.Header.Get("X-Drop-Me"))
	})
	tt := newTester(t, httpproxy.Config{}, o)
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "edits", Host: "edit.test", Action: router.Action{Cluster: "c"},
		AddRequestHeaders: []router.Header{{Name: "X-Tenant", Value: "blue"}}, RemoveRequestHeaders: []string{"X-Drop-Me"},
		AddResponseHeaders: []router.Header{{Name: "X-Served-By", Value: "sluice"}}, RemoveResponseHeaders: []string{"X-Internal"}}))
	out := tt.raw("GET /headers HTTP/1.1\r\nHost: edit.test\r\nX-Drop-Me: 1\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 200, statusOf(out))
	assert.Contains(t, out, "added=blue removed=")
	assert.NotContains(t, out, "removed=1")
	assert.Contains(t, out, "X-Served-By: sluice")
	assert.NotContains(t, out, "X-Internal")
	assert.Contains(t, out, "Server: origin")
}

func TestBackendResetMidResponseClosesClient(t *testing.T) {
	o := newOrigin(t, "o")
	o.srv.Handler.(*http.ServeMux).HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		c, _, _ := w.(http.Hijacker).Hijack()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	tt := newTester(t, httpproxy.Config{}, o)
	c := tt.client()
	resp, err := c.Get(tt.url + "/cut")
	require.NoError(t, err, "the head and the first bytes reached the client")
	assert.Equal(t, 200, resp.StatusCode)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Error(t, err, "the client sees the response cut short, not a complete one")
	require.Eventually(t, func() bool { return tt.l.Stats().BackendReset >= 1 }, 5*time.Second, time.Millisecond)
}

func TestChunkedBodyOverMaxBodyIn413(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{MaxBody: 100}, o)
	body := "c8\r\n" + strings.Repeat("x", 200) + "\r\n0\r\n\r\n"
	out := tt.raw("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
	assert.Equal(t, 413, statusOf(out), out)
	small := "5\r\nhello\r\n0\r\n\r\n"
	out = tt.raw("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + small)
	assert.Equal(t, 200, statusOf(out), out)
	assert.True(t, strings.HasSuffix(out, "hello"), out)
}

// Pooled connections are not active ones: after keep-alive traffic has
// settled, least-connections sees zero on every backend.
func TestPooledConnectionsAreNotCountedActive(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{}, a, b)
	c := tt.client()
	for i := 0; i < 20; i++ {
		resp, _ := get(t, c, tt.url+"/")
		require.Equal(t, 200, resp.StatusCode)
	}
	require.Greater(t, tt.l.Stats().ReusedBackend, uint64(10))
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		for _, be := range lp.Clusters().Cluster("c").Backends() {
			assert.Zero(t, be.Active(), "backend %s", be.ID)
		}
		return nil
	}))
}

func TestFailedConnectsLeaveNoActiveCount(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	require.NoError(t, tt.w.AddCluster("c", backend.LeastConnections))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "dead", Address: refusedPort(t)}))
	c := tt.client()
	for i := 0; i < 10; i++ {
		resp, body := get(t, c, tt.url+"/")
		require.Equal(t, 200, resp.StatusCode, body)
	}
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		for _, be := range lp.Clusters().Cluster("c").Backends() {
			assert.Zero(t, be.Active(), "backend %s", be.ID)
		}
		return nil
	}))
}

func TestForwardingFieldsExtendTheClients(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	out := tt.raw("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nForwarded: for=192.0.2.1;proto=https\r\n" +
		"X-Forwarded-Proto: https\r\nX-Request-Id:\r\nConnection: close\r\n\r\n")
	require.Equal(t, 200, statusOf(out), out)
	assert.Contains(t, out, "xff=192.0.2.1, 127.0.0.1")
	assert.Contains(t, out, "xfp=https", "a client's X-Forwarded-Proto is kept")
	assert.Contains(t, out, "fwd=for=192.0.2.1;proto=https, for=127.0.0.1;proto=http")
	i := strings.Index(out, "X-Request-Id: ")
	require.GreaterOrEqual(t, i, 0)
	id := out[i+len("X-Request-Id: ") : i+len("X-Request-Id: ")+16]
	assert.Contains(t, out, "id="+id, "an empty request id is replaced by the proxy's, on both sides")
}

func TestOmitForwardingLeavesFieldsOut(t *testing.T) {
	o := newOrigin(t, "o")
	for _, c := range []struct {
		omit      httpproxy.Forwarding
		want, not []string
	}{
		{httpproxy.AllForwarding, []string{"X-Forwarded-For: 192.0.2.1\r\n"},
			[]string{"X-Forwarded-Proto", "X-Forwarded-Port", "Forwarded:", "X-Request-Id", "127.0.0.1"}},
		{httpproxy.XForwardedPort | httpproxy.XRequestID,
			[]string{"X-Forwarded-For: 192.0.2.1, 127.0.0.1\r\n", "X-Forwarded-Proto: http\r\n", "Forwarded: for=127.0.0.1;proto=http\r\n"},
			[]string{"X-Forwarded-Port", "X-Request-Id"}},
		{httpproxy.XForwardedFor | httpproxy.Forwarded,
			[]string{"X-Forwarded-For: 192.0.2.1\r\n", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Port: ", "X-Request-Id: "},
			[]string{"Forwarded:", "127.0.0.1"}},
	} {
		t.Run(fmt.Sprintf("%05b", c.omit), func(t *testing.T) {
			tt := newTester(t, httpproxy.Config{OmitForwarding: c.omit}, o)
			out := tt.raw("GET /request-fields HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n")
			require.Equal(t, 200, statusOf(out), out)
			body := out[strings.Index(out, "\r\n\r\n")+4:]
			for _, w := range c.want {
				assert.Contains(t, body, w)
			}
			for _, n := range c.not {
				assert.NotContains(t, body, n)
			}
		})
	}
}

// backendCounters reads a backend's counters and its cluster's on the loop.
func backendCounters(t *testing.T, w *session.Worker, cluster string) (per map[string]backend.Counters, all backend.Counters) {
	per = map[string]backend.Counters{}
	require.NoError(t, w.Exec(func(lp *session.Loop) error {
		c := lp.Clusters().Cluster(cluster)
		for _, be := range c.Backends() {
			per[be.ID] = be.Counters()
		}
		all = c.Counters()
		return nil
	}))
	return per, all
}

// Counters mean what they say: Connections counts connects (a pooled
// connection or an HTTP/2 stream taken again is none), Requests counts
// each request, and the bytes are all that crossed the backend
// connection, in the listener's directions.
func TestBackendCountersCountConnectsRequestsAndBytes(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	c := tt.client()
	for i := 0; i < 10; i++ {
		resp, body := get(t, c, tt.url+"/size/1000")
		require.Equal(t, 200, resp.StatusCode)
		require.Len(t, body, 1000)
	}
	payload := bytes.Repeat([]byte("u"), 5000)
	resp, err := c.Post(tt.url+"/echo", "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	per, all := backendCounters(t, tt.w, "c")
	got := per["o"]
	assert.EqualValues(t, o.conns.Load(), got.Connections, "one connect per connection the origin accepted")
	assert.EqualValues(t, 1, got.Connections)
	assert.EqualValues(t, 11, got.Requests)
	assert.GreaterOrEqual(t, got.BytesIn, uint64(5000+11*40), "request heads and the upload")
	assert.GreaterOrEqual(t, got.BytesOut, uint64(15000+11*60), "response heads and bodies")
	assert.Equal(t, got, all, "the cluster adds up its one backend")
	st := tt.l.Stats()
	assert.Equal(t, got.BytesIn, st.BytesIn, "the listener counts the same bytes")
	assert.Equal(t, got.BytesOut, st.BytesOut)
}

// Streams of an HTTP/2 backend connection are requests, not connects.
func TestH2BackendCountersCountOneConnect(t *testing.T) {
	o := h2cOrigin(t, "g")
	tt := newH2BackTester(t, httpproxy.Config{}, o)
	c := tt.client()
	for i := 0; i < 5; i++ {
		resp, _ := get(t, c, tt.url+"/size/100")
		require.Equal(t, 200, resp.StatusCode)
	}
	per, _ := backendCounters(t, tt.w, "c")
	assert.EqualValues(t, 1, per["g"].Connections)
	assert.EqualValues(t, 5, per["g"].Requests)
	assert.GreaterOrEqual(t, per["g"].BytesOut, uint64(500))
}

// Routes match on fields and query parameters, and a hook's edit counts:
// the listener's hooks run before routing.
func TestRoutesMatchFieldsAndQuery(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{Hooks: []httpproxy.Hooks{{Request: func(r *httpproxy.Request) {
		if r.Path() == "/promote" {
			r.SetField("X-Canary", "1")
		}
	}}}}, a)
	require.NoError(t, tt.w.AddCluster("cb", backend.RoundRobin))
	require.NoError(t, tt.w.AddBackend("cb", backend.Backend{ID: "b", Address: b.addr}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "canary", HostKind: router.HostAny,
		Match: []router.Match{{Field: "X-Canary", Kind: router.Equals, Value: "1"}}, Action: router.Action{Cluster: "cb"}}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "v2", HostKind: router.HostAny,
		Match: []router.Match{{Query: "v", Kind: router.Regex, Value: `^2(\.\d+)?$`}}, Action: router.Action{Cluster: "cb"}}))
	c := tt.client()
	for _, tc := range []struct {
		path, canary, want string
	}{
		{"/x", "", "a"}, {"/x", "1", "b"}, {"/x?v=2.1", "", "b"}, {"/x?v=3", "", "a"}, {"/promote", "", "b"},
	} {
		req, _ := http.NewRequest("GET", tt.url+tc.path, nil)
		if tc.canary != "" {
			req.Header.Set("X-Canary", tc.canary)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.True(t, strings.HasPrefix(string(body), tc.want+" "), "%+v: %s", tc, body)
	}
}

// closingAfterOne answers the first request of each connection, then
// reads the next one and closes without answering, counting every
// request it read by method.
type closingAfterOne struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen map[string]int
}

func newClosingAfterOne(t *testing.T) *closingAfterOne {
	b := &closingAfterOne{seen: map[string]int{}}
	b.addr = rawOrigin(t, "b", func(c net.Conn) {
		r := bufio.NewReader(c)
		for i := 0; ; i++ {
			req, err := http.ReadRequest(r)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			b.mu.Lock()
			b.seen[req.Method]++
			b.mu.Unlock()
			if i > 0 {
				return // read it, then close without a word
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	}).addr
	return b
}

// A request a pooled connection's server read and then dropped is sent
// again on a fresh connection only when it is idempotent (RFC 9110
// §9.2.2): a POST is not replayed.
func TestNonIdempotentRequestNotReplayed(t *testing.T) {
	b := newClosingAfterOne(t)
	tt := newTester(t, httpproxy.Config{}, &origin{name: "b", addr: b.addr})
	send := func(method string) int {
		c, err := net.Dial("tcp", tt.addr.String())
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", method)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, send("GET")) // leaves a pooled connection
	assert.Equal(t, 502, send("POST"), "read, dropped, and not sent again")
	b.mu.Lock()
	assert.Equal(t, 1, b.seen["POST"], "the backend saw the POST once")
	b.mu.Unlock()

	assert.Equal(t, 200, send("GET")) // a fresh pooled connection
	assert.Equal(t, 200, send("PUT"), "an idempotent request is sent again on a fresh connection")
	b.mu.Lock()
	assert.Equal(t, 2, b.seen["PUT"])
	b.mu.Unlock()
	assert.EqualValues(t, 1, tt.l.Stats().Retried)
}

// A 101 to a request that asked for no upgrade is refused with 502 at
// once, not relayed to leave the client hanging.
func TestUnsolicitedSwitchingProtocolsIs502(t *testing.T) {
	b := rawOrigin(t, "b", func(c net.Conn) {
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
		io.Copy(io.Discard, c) // until the proxy lets go
	})
	tt := newTester(t, httpproxy.Config{}, b)
	start := time.Now()
	resp, err := tt.client().Get(tt.url + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 502, resp.StatusCode)
	assert.Less(t, time.Since(start), time.Second, "at once, not after a timeout")
	assert.EqualValues(t, 1, tt.l.Stats().BackendBadResponse)
}

// A backend that answers before it has the whole request body (an
// early 413) ends the client's connection, since the rest of the body
// cannot be told from a next request: the response says so (RFC 9112
// §9.6) instead of leaving a pipelining client to find out. (Found by
// the simulation, session/sim seed http/83.)
func TestEarlyAnswerAnnouncesClose(t *testing.T) {
	b := rawOrigin(t, "b", func(c net.Conn) {
		r := bufio.NewReader(c)
		http.ReadRequest(r) // the head only
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
		io.Copy(io.Discard, r)
	})
	tt := newTester(t, httpproxy.Config{}, b)
	out := tt.raw("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nonly the start")
	assert.Equal(t, 413, statusOf(out))
	assert.Contains(t, out, "\r\nConnection: close\r\n")
}

// Request-target forms (RFC 9112 §3.2): an absolute-form target's
// authority wins over Host and reaches the backend as origin-form with
// that Host; OPTIONS * is routed by Host; authority-form is CONNECT's
// alone, and CONNECT is not a reverse proxy's.
func TestRequestTargetForms(t *testing.T) {
	echo := func(name string) *origin {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s host=%s target=%s", name, r.Host, r.RequestURI)
		}))
		t.Cleanup(srv.Close)
		return &origin{name: name, addr: netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))}
	}
	a, b := echo("a"), echo("b")
	tt := newTester(t, httpproxy.Config{}, b)
	require.NoError(t, tt.w.AddCluster("ca", backend.RoundRobin))
	require.NoError(t, tt.w.AddBackend("ca", backend.Backend{ID: "a", Address: a.addr}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "a", Host: "a.example", Action: router.Action{Cluster: "ca"}}))

	out := tt.raw("GET http://a.example/x?y=1 HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 200, statusOf(out), out)
	assert.True(t, strings.HasSuffix(out, "a host=a.example target=/x?y=1"), out)
	out = tt.raw("GET http://a.example HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
	assert.True(t, strings.HasSuffix(out, "a host=a.example target=/"), out)

	out = tt.raw("OPTIONS * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
	assert.Equal(t, 200, statusOf(out), "routed by Host, answered by the backend: %s", out)

	out = tt.raw("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
	assert.Equal(t, 501, statusOf(out), out)
	out = tt.raw("GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n")
	assert.Equal(t, 400, statusOf(out), out)
}

// Removing a backend closes the idle pooled connections to it at once,
// rather than at their idle timeout.
func TestRemovedBackendsIdleConnectionsClose(t *testing.T) {
	closed := make(chan struct{}, 1)
	b := rawOrigin(t, "b", func(c net.Conn) {
		r := bufio.NewReader(c)
		if _, err := http.ReadRequest(r); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if _, err := r.ReadByte(); err == io.EOF {
			closed <- struct{}{} // the proxy closed its pooled connection
		}
	})
	tt := newTester(t, httpproxy.Config{IdleBackendTimeout: time.Hour}, b)
	resp, _ := get(t, tt.client(), tt.url+"/")
	require.Equal(t, 200, resp.StatusCode)
	require.NoError(t, tt.w.RemoveBackend("c", "b"))
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection to the removed backend stayed open")
	}
}

// A listener that also takes HTTP/2 with prior knowledge answers an
// HTTP/1.x request line it cannot serve as an HTTP/1.1 listener does
// (505 for another version); bytes that are neither HTTP/2 nor an
// HTTP/1.x request line are closed and counted.
func TestH2CListenerAnswersBadHTTP1(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true}, newOrigin(t, "a"))
	assert.Equal(t, 200, statusOf(tt.raw("GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n")), "a higher 1.x minor is 1.1")
	assert.Equal(t, 505, statusOf(tt.raw("GET / HTTP/3.0\r\nHost: a\r\n\r\n")))
	assert.Equal(t, 400, statusOf(tt.raw("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n")))
	assert.Empty(t, tt.raw("GARBAGE\r\n\r\n"))
	assert.Empty(t, tt.raw("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), "a broken preface gets no HTTP/1.1 answer")
	assert.EqualValues(t, 2, tt.l.Stats().NotHTTP)
}

// An h2c client that sent the start of the HTTP/2 preface and stalls is
// closed at the request timeout without an HTTP/1.1 408, which it would
// read as a broken frame (found by the simulation, seed h2/3644, after a
// clock jump).
func TestH2CStalledPrefaceClosesWithoutHTTP1Answer(t *testing.T) {
	tt := newTester(t, httpproxy.Config{H2C: true, RequestTimeout: 200 * time.Millisecond}, newOrigin(t, "a"))
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nS")
	require.NoError(t, err)
	out, _ := io.ReadAll(c)
	assert.Empty(t, string(out))
	// A stalled HTTP/1.1 head still gets its 408.
	c2, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c2, "GET / HT")
	out, _ = io.ReadAll(c2)
	assert.Equal(t, 408, statusOf(string(out)))
}

// tokenHolder keeps idle tokens that nothing asks it to give back.
type tokenHolder struct{ tokens []eventloop.Token }

func (h *tokenHolder) Event(eventloop.Token, eventloop.Ready)       {}
func (h *tokenHolder) Timeout(eventloop.Token, eventloop.TimerName) {}
func (h *tokenHolder) Close()                                       {}

// When idle pooled connections hold the last tokens a new client needs,
// the pool gives them back: the client waits in the backlog a moment and
// is served, never accepted and reset.
func TestIdlePoolGivesTokensBack(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTesterWith(t, httpproxy.Config{IdleBackendTimeout: time.Hour}, sessionConfig{maxConns: 4}, o)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // two backend connections at once, both pooled after
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			resp, _ := get(t, c, tt.url+"/slow")
			assert.Equal(t, 200, resp.StatusCode)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 2, o.conns.Load())
	require.Eventually(t, func() bool { return tt.status().Sessions == 0 }, 5*time.Second, 5*time.Millisecond)
	h := &tokenHolder{}
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		for {
			tok, err := lp.RegisterOwner(-1, h)
			if err != nil {
				return nil
			}
			h.tokens = append(h.tokens, tok)
		}
	}))
	resp, body := get(t, tt.client(), tt.url+"/x")
	assert.Equal(t, 200, resp.StatusCode, body)
	st := tt.status()
	assert.Zero(t, st.RefusedFull)
	assert.Positive(t, st.TokenPauses)
	assert.EqualValues(t, 3, o.conns.Load(), "the pooled connections were closed for their tokens; the request connected anew")
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		for _, tok := range h.tokens {
			lp.Release(tok, -1)
		}
		return nil
	}))
}
