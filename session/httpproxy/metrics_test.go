package httpproxy_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// The metrics an operator scrapes count what the clients got: requests
// by class at the listener, the cluster and the backend, the proxy's own
// answers, durations; and promtool accepts the page.
func TestMetricsCountWhatClientsGot(t *testing.T) {
	be := newOrigin(t, "a")
	tt := newTester(t, httpproxy.Config{Name: "web"}, be)
	c := tt.client()
	resp, _ := get(t, c, tt.url+"/hangup") // the backend hangs up: the proxy answers 502, and closes
	require.Equal(t, 502, resp.StatusCode)
	const ok = 25
	for i := 0; i < ok; i++ {
		resp, _ := get(t, c, tt.url+"/x")
		require.Equal(t, 200, resp.StatusCode)
	}

	reg := metrics.NewRegistry(tt.w, tt.l)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	page := scrape(t, srv.URL)
	promtool(t, page)

	s, err := reg.Gather(context.Background())
	require.NoError(t, err)
	web, cl, a := metrics.L("listener", "web"), metrics.L("cluster", "c"), metrics.L("backend", "a")
	value := func(name string, labels ...metrics.Label) float64 {
		t.Helper()
		v, found := s.Value(name, labels...)
		require.True(t, found, "%s%v", name, labels)
		return v
	}
	class := func(k string) metrics.Label { return metrics.L("class", k) }
	assert.Equal(t, float64(ok+1), value("sluice_http_requests_total", web))
	assert.Equal(t, float64(ok), value("sluice_http_responses_total", web, class("2xx")))
	assert.Equal(t, 1.0, value("sluice_http_responses_total", web, class("5xx")))
	assert.Equal(t, 1.0, value("sluice_http_answers_total", web, metrics.L("code", "502")))
	assert.Equal(t, float64(ok), value("sluice_backend_responses_total", cl, a, class("2xx")))
	assert.Zero(t, value("sluice_backend_responses_total", cl, a, class("5xx")), "the backend sent no 5xx: the proxy did")
	assert.Equal(t, float64(ok), value("sluice_cluster_responses_total", cl, class("2xx")))
	assert.Equal(t, 1.0, value("sluice_cluster_responses_total", cl, class("5xx")))
	assert.GreaterOrEqual(t, value("sluice_backend_requests_total", cl, a), float64(ok+1))
	assert.Equal(t, 1.0, value("sluice_backend_state", cl, a, metrics.L("state", "up")))
	assert.Equal(t, 1.0, value("sluice_listener_active_connections", web), "the client's keep-alive connection")

	h, found := s.HistogramOf("sluice_http_request_duration_seconds", web)
	require.True(t, found)
	assert.Equal(t, uint64(ok+1), h.Count())
	h, _ = s.HistogramOf("sluice_backend_first_byte_seconds", cl, a)
	assert.Equal(t, uint64(ok), h.Count())
	h, _ = s.HistogramOf("sluice_backend_connect_seconds", cl, a)
	assert.GreaterOrEqual(t, h.Count(), uint64(1))
	h, _ = s.HistogramOf("sluice_cluster_request_duration_seconds", cl)
	assert.Equal(t, uint64(ok+1), h.Count())
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, metrics.ContentType, resp.Header.Get("Content-Type"))
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return page
}

// promtool runs Prometheus's own checker on a page and fails on any
// remark, lint warnings included.
func promtool(t *testing.T, page []byte) {
	t.Helper()
	cmd := exec.Command(tool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "promtool: %s", out)
	assert.Empty(t, string(out), "promtool has remarks")
}
