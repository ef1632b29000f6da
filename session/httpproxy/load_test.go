package httpproxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// hammer runs n clients doing keep-alive GETs until stop is closed and
// returns the successes and failures.
func hammer(t *testing.T, url string, n int, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = &atomic.Int64{}, &atomic.Int64{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("request failed: %v status %d", err, resp.StatusCode)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, failed, wg.Wait
}

func TestReconfigurationUnderLoadFailsNothing(t *testing.T) {
	a, b := newOrigin(t, "a"), newOrigin(t, "b")
	tt := newTester(t, httpproxy.Config{}, a, b)
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "api", HostKind: router.HostAny, Path: "/api", Action: router.Action{Cluster: "c"}}))
	stop := make(chan struct{})
	ok, failed, wait := hammer(t, tt.url+"/api/x", 8, stop)
	step := func() { time.Sleep(100 * time.Millisecond) }
	step()
	// Backends come and go, a cluster is added, routes are added and
	// removed: established and new requests must all succeed.
	c := newOrigin(t, "c2")
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "c2", Address: c.addr}))
	step()
	require.NoError(t, tt.w.RemoveBackend("c", "a"))
	step()
	require.NoError(t, tt.w.AddCluster("d", backend.LeastConnections))
	require.NoError(t, tt.w.AddBackend("d", backend.Backend{ID: "b", Address: b.addr}))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "api2", HostKind: router.HostAny, Path: "/api/x", PathKind: router.PathExact, Action: router.Action{Cluster: "d"}}))
	step()
	require.NoError(t, tt.l.RemoveFrontend(tt.w, "api"))
	step()
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "a-again", Address: a.addr}))
	require.NoError(t, tt.l.RemoveFrontend(tt.w, "api2"))
	require.NoError(t, tt.l.AddFrontend(tt.w, router.Frontend{ID: "api", HostKind: router.HostAny, Path: "/api", Action: router.Action{Cluster: "c"}}))
	step()
	close(stop)
	wait()
	assert.Zero(t, failed.Load(), "failed requests")
	assert.Greater(t, ok.Load(), int64(100))
}

func TestSoftStopUnderLoadLosesNoRequest(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{}, o)
	stop := make(chan struct{})
	ok, failed, wait := hammer(t, tt.url+"/size/20000", 8, stop)
	time.Sleep(200 * time.Millisecond)
	before := ok.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tt.w.SoftStop(ctx))
	close(stop)
	wait()
	// Requests in flight when the stop began completed; keep-alive
	// connections were told Connection: close, and the clients' later
	// attempts could only be refused connections, which the clients see
	// as dial errors: those are the only failures allowed.
	st := tt.l.Stats()
	assert.Greater(t, ok.Load(), before)
	assert.Equal(t, st.Requests, st.Responses, "every request the proxy read was answered")
	assert.Zero(t, st.BackendReset+st.ClientReset, "no exchange was cut")
	t.Logf("ok %d, refused after the stop %d", ok.Load(), failed.Load())
}

// A soft stop does not close a keep-alive connection under a request on
// its way: one used a moment ago stays open for StopIdleAfter, and the
// request that comes meanwhile is answered, with Connection: close.
func TestSoftStopAnswersTheNextRequestOfABusyConnection(t *testing.T) {
	o := newOrigin(t, "o")
	tt := newTester(t, httpproxy.Config{StopIdleAfter: 2 * time.Second}, o)
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	ask := func() *http.Response {
		_, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: app\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	assert.False(t, ask().Close)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- tt.w.SoftStop(ctx)
	}()
	// The stop's first round has run once the worker says it is
	// shutting down: without StopIdleAfter the connection is closed by
	// then.
	require.Eventually(t, func() bool {
		st, err := tt.w.Status()
		return err == nil && st.ShuttingDown
	}, 5*time.Second, time.Millisecond)
	resp := ask()
	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, resp.Close, "the last response says Connection: close")
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "then the proxy closes")
	require.NoError(t, <-stopped)
}
