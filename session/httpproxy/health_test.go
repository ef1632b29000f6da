package httpproxy_test

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

func TestHealthChecksTakeBackendsOutAndBack(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	var aSick atomic.Bool
	var checks atomic.Int64
	a.srv.Handler.(*http.ServeMux).HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		if aSick.Load() {
			w.WriteHeader(503)
		}
	})
	b.srv.Handler.(*http.ServeMux).HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {})
	tt := newTester(t, httpproxy.Config{}, a, b)
	require.NoError(t, httpproxy.StartHealthChecks(tt.w, "c", httpproxy.HealthCheck{
		Path: "/health", Interval: 30 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2,
	}))
	assert.ErrorIs(t, httpproxy.StartHealthChecks(tt.w, "nope", httpproxy.HealthCheck{}), httpproxy.ErrUnknownCluster)
	c := tt.client()
	backendsSeen := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			resp, err := c.Get(tt.url + "/")
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[resp.Header.Get("X-Backend")]++
		}
		return seen
	}
	require.Eventually(t, func() bool { return checks.Load() >= 3 }, 5*time.Second, 5*time.Millisecond, "checks run")
	assert.Equal(t, map[string]int{"a": 5, "b": 5}, backendsSeen(10))

	aSick.Store(true)
	healthy := func(id string) bool {
		var up bool
		require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
			up = lp.Clusters().Cluster("c").Backend(id).Healthy()
			return nil
		}))
		return up
	}
	require.Eventually(t, func() bool { return !healthy("a") }, 5*time.Second, 5*time.Millisecond, "a fails its checks")
	assert.Equal(t, map[string]int{"b": 10}, backendsSeen(10), "no traffic to a failed backend")

	aSick.Store(false)
	require.Eventually(t, func() bool { return healthy("a") }, 5*time.Second, 5*time.Millisecond, "a comes back")
	assert.Equal(t, map[string]int{"a": 5, "b": 5}, backendsSeen(10))

	// A backend added later is checked too; one nobody listens on goes down.
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "dead", Address: refusedPort(t)}))
	require.Eventually(t, func() bool { return !healthy("dead") }, 5*time.Second, 5*time.Millisecond, "the dead backend is found out")
}

// refusedPort is a loopback address nobody listens on.
func refusedPort(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return a
}
