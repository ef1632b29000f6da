package filter_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session/httpproxy/filter"
)

// shadow records the requests mirrored to it.
type shadow struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

// newShadow answers each copy once hold is closed (nil: at once).
func newShadow(t *testing.T, hold chan struct{}) *shadow {
	s := &shadow{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.RequestURI()+" "+string(b)+" xff="+r.Header.Get("X-Forwarded-For"))
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		io.WriteString(w, "shadow answer")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *shadow) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func addShadow(t *testing.T, url string, add func(string, backend.Policy) error, addB func(string, backend.Backend) error, s *shadow) {
	require.NoError(t, add("shadow", backend.RoundRobin))
	require.NoError(t, addB("shadow", backend.Backend{ID: "s", Address: netip.MustParseAddrPort(strings.TrimPrefix(s.srv.URL, "http://"))}))
}

func TestMirrorCopiesRequests(t *testing.T) {
	s := newShadow(t, nil)
	m := filter.NewMirror(filter.MirrorConfig{Cluster: "shadow", MaxBody: 100})
	url, w := proxyOn(t, m.Hooks())
	addShadow(t, url, w.AddCluster, w.AddBackend, s)

	resp, body := do(t, url+"/a?q=1")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "host="+strings.TrimPrefix(url, "http://")+" target=/a?q=1", body, "the client gets the main backend's answer")
	resp, err := http.Post(url+"/b", "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = http.Post(url+"/big", "text/plain", strings.NewReader(strings.Repeat("x", 101)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode, "too big to copy, still served")

	require.Eventually(t, func() bool { return m.Stats().Sent == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.ElementsMatch(t, []string{"GET /a?q=1  xff=127.0.0.1", "POST /b payload xff=127.0.0.1"}, s.requests())
	assert.Equal(t, filter.MirrorStats{Sent: 2, Skipped: 1}, m.Stats())
}

// A slow shadow never slows the main exchange, and copies beyond the
// bound are dropped, not queued.
func TestMirrorNeverSlowsAndIsBounded(t *testing.T) {
	hold := make(chan struct{})
	s := newShadow(t, hold)
	t.Cleanup(func() { // a failed test must not leave the shadow holding (before its Close)
		select {
		case <-hold:
		default:
			close(hold)
		}
	})
	m := filter.NewMirror(filter.MirrorConfig{Cluster: "shadow", MaxInFlight: 1})
	url, w := proxyOn(t, m.Hooks())
	addShadow(t, url, w.AddCluster, w.AddBackend, s)
	served := make(chan int, 3)
	go func() {
		for i := 0; i < 3; i++ {
			resp, err := http.Get(url + "/x")
			if err != nil {
				served <- 0
				continue
			}
			resp.Body.Close()
			served <- resp.StatusCode
		}
	}()
	for i := 0; i < 3; i++ {
		select {
		case code := <-served: // while the shadow still holds the first copy
			assert.Equal(t, 200, code)
		case <-time.After(5 * time.Second):
			t.Fatal("the client waited for the shadow")
		}
	}
	assert.EqualValues(t, 2, m.Stats().Dropped, "one copy in flight at most; the others dropped, not queued")
	close(hold)
	require.Eventually(t, func() bool { return m.Stats().Sent == 1 }, 5*time.Second, 5*time.Millisecond)
}
