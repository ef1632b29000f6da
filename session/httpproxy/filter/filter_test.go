package filter_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/httpproxy/filter"
)

// proxy runs a worker with one HTTP listener and the given hooks in
// front of a backend that echoes the host and target it received.
func proxy(t *testing.T, hooks ...httpproxy.Hooks) string {
	t.Helper()
	url, _ := proxyOn(t, hooks...)
	return url
}

func proxyOn(t *testing.T, hooks ...httpproxy.Hooks) (string, *session.Worker) {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s target=%s", r.Host, r.URL.RequestURI())
	}))
	t.Cleanup(origin.Close)
	w, err := session.NewWorker(session.Config{})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- w.Run() }()
	t.Cleanup(func() { w.HardStop(); <-done })
	require.NoError(t, w.AddCluster("c", backend.RoundRobin))
	require.NoError(t, w.AddBackend("c", backend.Backend{ID: "o", Address: netip.MustParseAddrPort(strings.TrimPrefix(origin.URL, "http://"))}))
	l := httpproxy.NewListener(httpproxy.Config{Hooks: hooks})
	require.NoError(t, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
	addr, err := w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	require.NoError(t, err)
	return "http://" + addr.String(), w
}

func do(t *testing.T, url string, fields ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Set(fields[i], fields[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestBearerUnlessPublic(t *testing.T) {
	url := proxy(t, filter.When(filter.Not(filter.PathPrefix("/public/")),
		filter.Bearer("api", func(tok string) bool { return filter.Equal(tok, "s3cret") })))
	resp, _ := do(t, url+"/private")
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer realm="api"`, resp.Header.Get("WWW-Authenticate"))
	resp, _ = do(t, url+"/private", "Authorization", "Bearer wrong")
	assert.Equal(t, 401, resp.StatusCode)
	resp, _ = do(t, url+"/private", "Authorization", "Basic s3cret")
	assert.Equal(t, 401, resp.StatusCode, "another scheme")
	resp, _ = do(t, url+"/private", "Authorization", "bearer s3cret")
	assert.Equal(t, 200, resp.StatusCode, "the scheme is case-insensitive")
	resp, _ = do(t, url+"/public/x")
	assert.Equal(t, 200, resp.StatusCode)
}

func TestBasicAuth(t *testing.T) {
	url := proxy(t, filter.BasicAuth("admin", func(u, p string) bool { return u == "ann" && filter.Equal(p, "pw:x") }))
	resp, _ := do(t, url+"/")
	assert.Equal(t, 401, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Basic realm="admin"`)
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.SetBasicAuth("ann", "pw:x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, url+"/", "Authorization", "Basic !!!")
	assert.Equal(t, 401, resp.StatusCode)
}

func TestRewrites(t *testing.T) {
	url := proxy(t, filter.StripPrefix("/api"), filter.RewritePath(regexp.MustCompile(`^/v1/(\w+)$`), "/$1/index"), filter.SetHost("internal.test"))
	_, body := do(t, url+"/api/users?id=7")
	assert.Equal(t, "host=internal.test target=/users?id=7", body)
	_, body = do(t, url+"/api")
	assert.Equal(t, "host=internal.test target=/", body)
	_, body = do(t, url+"/apix")
	assert.Equal(t, "host=internal.test target=/x", body, "a prefix on the path's bytes, as net/http's StripPrefix")
	_, body = do(t, url+"/v1/docs")
	assert.Equal(t, "host=internal.test target=/docs/index", body)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestRateLimitPerClient(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	url := proxy(t, filter.RateLimit(filter.Limit{PerSecond: 2, Burst: 3, Now: clock.Now}))
	for i := 0; i < 3; i++ {
		resp, _ := do(t, url+"/")
		require.Equal(t, 200, resp.StatusCode, "the burst")
	}
	resp, _ := do(t, url+"/")
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	clock.Add(500 * time.Millisecond) // one token back
	resp, _ = do(t, url+"/")
	assert.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, url+"/")
	assert.Equal(t, 429, resp.StatusCode)
}

func TestRateLimitByKeyAndBoundedKeys(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	key := func(r *httpproxy.Request) string { v, _ := r.Field("X-Api-Key"); return v }
	url := proxy(t, filter.RateLimit(filter.Limit{PerSecond: 1, Burst: 1, Key: key, MaxKeys: 1, Now: clock.Now}))
	resp, _ := do(t, url+"/", "X-Api-Key", "a")
	assert.Equal(t, 200, resp.StatusCode)
	resp, _ = do(t, url+"/", "X-Api-Key", "a")
	assert.Equal(t, 429, resp.StatusCode, "a is limited")
	resp, _ = do(t, url+"/")
	assert.Equal(t, 200, resp.StatusCode, "no key: unlimited")
	for i := 0; i < 3; i++ {
		resp, _ = do(t, url+"/", "X-Api-Key", fmt.Sprint("k", i))
		assert.Equal(t, 200, resp.StatusCode, "other keys pass (tracked or, when the table is full, unlimited)")
	}
	resp, _ = do(t, url+"/", "X-Api-Key", "a")
	assert.Equal(t, 429, resp.StatusCode, "a full table never frees a limited key")
	clock.Add(2 * time.Second)
	resp, _ = do(t, url+"/", "X-Api-Key", "a")
	assert.Equal(t, 200, resp.StatusCode)
}
