package httpproxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// fieldsOrigin answers with its name and the request fields a hook may
// have set.
func fieldsOrigin(t *testing.T, name string) *origin {
	t.Helper()
	o := &origin{name: name}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s path=%s query=%s tenant=%s resumed=%s xff=%s", name, r.URL.Path, r.URL.RawQuery,
			r.Header.Get("X-Tenant"), r.Header.Get("X-Resumed"), r.Header.Get("X-Seen-Xff"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o.addr = netip.MustParseAddrPort(ln.Addr().String())
	o.srv = &http.Server{Handler: h}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// hookMode is one way a client reaches the listener.
type hookMode struct {
	name  string
	proto string
	start func(t *testing.T, cfg httpproxy.Config, o *origin) (*tester, string, *http.Client)
}

var hookModes = []hookMode{
	{"http1", "HTTP/1.1", func(t *testing.T, cfg httpproxy.Config, o *origin) (*tester, string, *http.Client) {
		tt := newTester(t, cfg, o)
		return tt, tt.url, tt.client()
	}},
	{"https1", "HTTP/1.1", func(t *testing.T, cfg httpproxy.Config, o *origin) (*tester, string, *http.Client) {
		f := newHTTPS(t, cfg, o)
		return f.tester, f.url, f.client()
	}},
	{"h2", "HTTP/2", func(t *testing.T, cfg httpproxy.Config, o *origin) (*tester, string, *http.Client) {
		f := newHTTPS(t, cfg, o)
		return f.tester, f.url, h2Client(t, f)
	}},
	{"h2c", "HTTP/2", func(t *testing.T, cfg httpproxy.Config, o *origin) (*tester, string, *http.Client) {
		cfg.H2C = true
		tt := newTester(t, cfg, o)
		return tt, tt.url, h2cClient(t)
	}},
}

// gatewayHooks is the hook set the mode test runs: auth with a public
// prefix, a tenant from the host, a canary by field, a path rewrite, a
// panic, suspensions resumed and not, an upstream check, response edits
// and outcomes.
type gatewayHooks struct {
	suspended chan struct{} // a /wait request is suspended
	release   chan struct{} // resume it
	mu        sync.Mutex
	outcomes  []httpproxy.Outcome
	protos    []string
}

func (g *gatewayHooks) hooks() []httpproxy.Hooks {
	auth := httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		if !strings.HasPrefix(r.Path(), "/public/") {
			if v, _ := r.Field("Authorization"); v != "Bearer demo-token" {
				r.Respond(401, "token needed\n", httpproxy.Field{Name: "WWW-Authenticate", Value: `Bearer realm="test"`})
				return
			}
		}
		r.SetValue(r.Proto())
	}}
	route := httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		tenant, _, _ := strings.Cut(r.Host(), ".")
		r.SetField("X-Tenant", tenant)
		if v, _ := r.Field("X-Canary"); v == "1" {
			r.UseCluster("canary")
		}
		switch p := r.Path(); {
		case strings.HasPrefix(p, "/strip/"):
			r.SetPath(strings.TrimPrefix(p, "/strip"))
		case p == "/panic":
			panic("a hook's bug")
		case p == "/wait":
			pend := r.Suspend(10 * time.Second)
			go func() {
				g.suspended <- struct{}{}
				<-g.release
				pend.Resume(func(r *httpproxy.Request) { r.SetField("X-Resumed", "yes") })
			}()
		case p == "/never":
			r.Suspend(100 * time.Millisecond) // nobody resumes it
		}
	}}
	upstream := httpproxy.Hooks{Upstream: func(r *httpproxy.Request) {
		xff, _ := r.Field("X-Forwarded-For") // the proxy's own edit is visible
		r.SetField("X-Seen-Xff", xff)
	}}
	response := httpproxy.Hooks{Response: func(r *httpproxy.Request, w *httpproxy.Response) {
		w.SetField("X-Hooked", fmt.Sprint(r.Value()))
		if r.Path() == "/teapot" {
			w.SetStatus(418, "")
		}
	}}
	done := httpproxy.Hooks{Done: func(r *httpproxy.Request, o *httpproxy.Outcome) {
		g.mu.Lock()
		g.outcomes = append(g.outcomes, *o)
		g.mu.Unlock()
	}}
	return []httpproxy.Hooks{auth, route, upstream, response, done}
}

func (g *gatewayHooks) statuses() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, o := range g.outcomes {
		out = append(out, fmt.Sprintf("%d/%v/%s", o.Status, o.Answered, o.Backend))
	}
	sort.Strings(out)
	return out
}

// One test body over every protocol a client may speak: each request on
// the same connection gets its own decision; a suspended request is
// resumed from another goroutine while others flow; a deadline passes; a
// hook panics and the connection goes on.
func TestHooksInEveryMode(t *testing.T) {
	for _, m := range hookModes {
		t.Run(m.name, func(t *testing.T) {
			g := &gatewayHooks{suspended: make(chan struct{}), release: make(chan struct{})}
			main, canary := fieldsOrigin(t, "main"), fieldsOrigin(t, "canary")
			tt, base, c := m.start(t, httpproxy.Config{Hooks: g.hooks()}, main)
			require.NoError(t, tt.w.AddCluster("canary", backend.RoundRobin))
			require.NoError(t, tt.w.AddBackend("canary", backend.Backend{ID: "canary", Address: canary.addr}))

			do := func(method, path string, fields ...string) (*http.Response, string) {
				t.Helper()
				req, err := http.NewRequest(method, base+path, nil)
				require.NoError(t, err)
				req.Host = "acme.example.test"
				for i := 0; i+1 < len(fields); i += 2 {
					req.Header.Set(fields[i], fields[i+1])
				}
				resp, err := c.Do(req)
				require.NoError(t, err)
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				assert.Equal(t, m.proto, resp.Proto[:len(m.proto)])
				return resp, string(b)
			}
			bearer := []string{"Authorization", "Bearer demo-token"}

			// Three requests on one connection, three decisions.
			resp, body := do("GET", "/public/a?x=1")
			assert.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, body, "main path=/public/a query=x=1 tenant=acme")
			assert.Equal(t, m.proto, resp.Header.Get("X-Hooked"))
			resp, body = do("GET", "/private")
			assert.Equal(t, 401, resp.StatusCode)
			assert.Equal(t, `Bearer realm="test"`, resp.Header.Get("WWW-Authenticate"))
			assert.Equal(t, "token needed\n", body)
			resp, body = do("GET", "/private", append(bearer, "X-Canary", "1")...)
			assert.Equal(t, 200, resp.StatusCode)
			assert.True(t, strings.HasPrefix(body, "canary "), body)
			assert.Contains(t, body, "xff=127.0.0.1", "the Upstream hook saw the proxy's X-Forwarded-For")
			resp, body = do("GET", "/strip/b", bearer...)
			assert.True(t, strings.HasPrefix(body, "main path=/b "), body)
			resp, _ = do("GET", "/teapot", bearer...)
			assert.Equal(t, 418, resp.StatusCode)

			// A panicking hook fails its request only.
			resp, _ = do("GET", "/panic", bearer...)
			assert.Equal(t, 500, resp.StatusCode)
			resp, _ = do("GET", "/public/after-panic")
			assert.Equal(t, 200, resp.StatusCode, "the connection goes on")
			assert.EqualValues(t, 1, tt.status().Accepted, "every request so far on one connection")

			// A suspended request waits for its resume while others flow.
			waited := make(chan string, 1)
			go func() {
				resp, body := do("GET", "/wait", bearer...)
				waited <- fmt.Sprint(resp.StatusCode, " ", body)
			}()
			<-g.suspended
			for i := 0; i < 3; i++ {
				resp, _ := do("GET", "/public/meanwhile")
				assert.Equal(t, 200, resp.StatusCode)
			}
			close(g.release)
			select {
			case got := <-waited:
				assert.True(t, strings.HasPrefix(got, "200 main "), got)
				assert.Contains(t, got, "resumed=yes")
			case <-time.After(10 * time.Second):
				t.Fatal("the suspended request was not resumed")
			}

			// A deadline that passes answers 504.
			resp, _ = do("GET", "/never", bearer...)
			assert.Equal(t, 504, resp.StatusCode)

			st := tt.l.Stats()
			assert.EqualValues(t, 1, st.HookPanics)
			assert.EqualValues(t, 1, st.HookTimeouts)
			assert.EqualValues(t, 2, st.HookAnswers, "the 401 and the panic's 500")
			require.Eventually(t, func() bool { return len(g.statuses()) == 12 }, 5*time.Second, 5*time.Millisecond, "one outcome per request: %v", g.statuses())
			assert.Equal(t, []string{"200/false/canary", "200/false/main", "200/false/main", "200/false/main", "200/false/main",
				"200/false/main", "200/false/main", "200/false/main", "401/true/", "418/false/main", "500/true/", "504/true/"}, g.statuses())
		})
	}
}

// Hooks set per route run after the listener's, for that route only.
func TestRouteHooks(t *testing.T) {
	o := fieldsOrigin(t, "o")
	var order []string
	var mu sync.Mutex
	note := func(s string) httpproxy.Hooks {
		return httpproxy.Hooks{Request: func(r *httpproxy.Request) { mu.Lock(); order = append(order, s); mu.Unlock() }}
	}
	tt := newTester(t, httpproxy.Config{Hooks: []httpproxy.Hooks{note("listener")}}, o)
	require.NoError(t, tt.l.SetRouteHooks(tt.w, "all", note("route 1"), note("route 2")))
	seen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		o := order
		order = nil
		return o
	}
	resp, _ := get(t, tt.client(), tt.url+"/")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, []string{"listener", "route 1", "route 2"}, seen())
	require.NoError(t, tt.l.SetRouteHooks(tt.w, "all"))
	get(t, tt.client(), tt.url+"/")
	assert.Equal(t, []string{"listener"}, seen())
}

// A hook that resumes a request whose client left, or whose deadline
// passed, changes nothing.
func TestResumeAfterTheClientLeft(t *testing.T) {
	o := fieldsOrigin(t, "o")
	pending := make(chan *httpproxy.Pending, 1)
	tt := newTester(t, httpproxy.Config{Hooks: []httpproxy.Hooks{{Request: func(r *httpproxy.Request) {
		pending <- r.Suspend(time.Minute)
	}}}}, o)
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	require.NoError(t, err)
	p := <-pending
	c.Close()
	require.Eventually(t, func() bool { return tt.status().Sessions == 0 }, 5*time.Second, 5*time.Millisecond)
	var ran atomic.Bool
	p.Resume(func(r *httpproxy.Request) { ran.Store(true) })
	assert.ErrorIs(t, p.Resume(nil), httpproxy.ErrNotPending, "only the first resume counts")
	require.NoError(t, tt.w.Exec(func(*session.Loop) error { return nil })) // the posted resume ran
	assert.False(t, ran.Load())
}

func (tt *tester) status() session.Status {
	tt.t.Helper()
	st, err := tt.w.Status()
	require.NoError(tt.t, err)
	return st
}
