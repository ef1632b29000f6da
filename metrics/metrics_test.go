package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/metrics"
)

func TestHistogramBuckets(t *testing.T) {
	var h metrics.Histogram
	h.Observe(0)                      // first bucket
	h.Observe(500 * time.Microsecond) // a bound is in its own bucket (le)
	h.Observe(501 * time.Microsecond) // the next
	h.Observe(-time.Second)           // a clock step back counts as zero
	h.Observe(time.Hour)              // above the last bound
	v := h.Load()
	assert.Equal(t, uint64(3), v.Counts[0])
	assert.Equal(t, uint64(1), v.Counts[1])
	assert.Equal(t, uint64(1), v.Counts[len(v.Counts)-1])
	assert.Equal(t, uint64(5), v.Count())
	assert.Equal(t, time.Hour+1001*time.Microsecond, v.Sum)
}

func TestObserveDoesNotAllocate(t *testing.T) {
	var h metrics.Histogram
	assert.Zero(t, testing.AllocsPerRun(1000, func() { h.Observe(3 * time.Millisecond) }))
}

// The exact text a small set writes: sorted families, HELP and TYPE,
// escaped label values and help, cumulative buckets in seconds.
func TestWriteText(t *testing.T) {
	s := metrics.NewSet()
	s.Counter("sluice_b_requests_total", "Requests.\nSecond line with \\.", 3, metrics.L("listener", `a"b`), metrics.L("class", "2xx"))
	s.Counter("sluice_b_requests_total", "Requests.", 2, metrics.L("class", "2xx"), metrics.L("listener", `a"b`)) // same series: summed
	s.Gauge("sluice_a_sessions", "Sessions.", 7)
	var h metrics.Histogram
	h.Observe(2 * time.Millisecond)
	h.Observe(2 * time.Second)
	s.Histogram("sluice_c_seconds", "Durations.", h.Load(), metrics.L("cluster", "c"))
	var out bytes.Buffer
	require.NoError(t, s.WriteText(&out))
	want := `# HELP sluice_a_sessions Sessions.
# TYPE sluice_a_sessions gauge
sluice_a_sessions 7
# HELP sluice_b_requests_total Requests.\nSecond line with \\.
# TYPE sluice_b_requests_total counter
sluice_b_requests_total{class="2xx",listener="a\"b"} 5
# HELP sluice_c_seconds Durations.
# TYPE sluice_c_seconds histogram
sluice_c_seconds_bucket{cluster="c",le="0.0005"} 0
sluice_c_seconds_bucket{cluster="c",le="0.001"} 0
sluice_c_seconds_bucket{cluster="c",le="0.0025"} 1
sluice_c_seconds_bucket{cluster="c",le="0.005"} 1
sluice_c_seconds_bucket{cluster="c",le="0.01"} 1
sluice_c_seconds_bucket{cluster="c",le="0.025"} 1
sluice_c_seconds_bucket{cluster="c",le="0.05"} 1
sluice_c_seconds_bucket{cluster="c",le="0.1"} 1
sluice_c_seconds_bucket{cluster="c",le="0.25"} 1
sluice_c_seconds_bucket{cluster="c",le="0.5"} 1
sluice_c_seconds_bucket{cluster="c",le="1"} 1
sluice_c_seconds_bucket{cluster="c",le="2.5"} 2
sluice_c_seconds_bucket{cluster="c",le="5"} 2
sluice_c_seconds_bucket{cluster="c",le="10"} 2
sluice_c_seconds_bucket{cluster="c",le="30"} 2
sluice_c_seconds_bucket{cluster="c",le="60"} 2
sluice_c_seconds_bucket{cluster="c",le="+Inf"} 2
sluice_c_seconds_sum{cluster="c"} 2.002
sluice_c_seconds_count{cluster="c"} 2
`
	assert.Equal(t, want, out.String())

	v, ok := s.Value("sluice_b_requests_total", metrics.L("listener", `a"b`), metrics.L("class", "2xx"))
	assert.True(t, ok)
	assert.Equal(t, 5.0, v)
	assert.Equal(t, 5.0, s.Sum("sluice_b_requests_total", metrics.L("class", "2xx")))
	_, ok = s.Value("sluice_b_requests_total", metrics.L("class", "2xx"))
	assert.False(t, ok, "a sample is found by all its labels")
}

// Workers' sets merge into one: same series add up, others join.
func TestMerge(t *testing.T) {
	a, b := metrics.NewSet(), metrics.NewSet()
	var h metrics.Histogram
	h.Observe(time.Millisecond)
	for _, s := range []*metrics.Set{a, b} {
		s.Counter("x_total", "X.", 1, metrics.L("w", "same"))
		s.Histogram("y_seconds", "Y.", h.Load())
	}
	b.Counter("x_total", "X.", 4, metrics.L("w", "other"))
	a.Merge(b)
	v, _ := a.Value("x_total", metrics.L("w", "same"))
	assert.Equal(t, 2.0, v)
	v, _ = a.Value("x_total", metrics.L("w", "other"))
	assert.Equal(t, 4.0, v)
	hv, ok := a.HistogramOf("y_seconds")
	require.True(t, ok)
	assert.Equal(t, uint64(2), hv.Count())
	assert.NoError(t, a.Err())
}

// A collector's mistakes are reported, not written out as an invalid
// exposition.
func TestSetRefusesBadNames(t *testing.T) {
	for name, add := range map[string]func(s *metrics.Set){
		"metric name":    func(s *metrics.Set) { s.Counter("1bad", "", 1) },
		"label name":     func(s *metrics.Set) { s.Counter("ok_total", "", 1, metrics.L("a-b", "v")) },
		"reserved label": func(s *metrics.Set) { s.Counter("ok_total", "", 1, metrics.L("__x", "v")) },
		"le on a histogram": func(s *metrics.Set) {
			s.Histogram("h_seconds", "", metrics.HistogramValue{}, metrics.L("le", "1"))
		},
		"histogram suffix": func(s *metrics.Set) { s.Histogram("h_count", "", metrics.HistogramValue{}) },
		"two kinds": func(s *metrics.Set) {
			s.Counter("x", "", 1)
			s.Gauge("x", "", 1)
		},
	} {
		s := metrics.NewSet()
		add(s)
		assert.Error(t, s.Err(), name)
	}
}

func TestRegistryServesText(t *testing.T) {
	reg := metrics.NewRegistry(metrics.CollectorFunc(func(ctx context.Context, s *metrics.Set) error {
		s.Counter("sluice_test_total", "A test counter.", 42)
		return nil
	}))
	srv := httptest.NewServer(reg)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, metrics.ContentType, resp.Header.Get("Content-Type"))
	assert.Contains(t, string(body), "sluice_test_total 42\n")

	resp, err = http.Post(srv.URL, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// A collector that fails (a worker that does not answer) fails the
	// scrape rather than serving counters that would go backwards.
	reg.Register(metrics.CollectorFunc(func(ctx context.Context, s *metrics.Set) error {
		return errors.New("worker 1 did not answer")
	}))
	resp, err = http.Get(srv.URL)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(body), "worker 1 did not answer")
}

// promtool, Prometheus's own checker, accepts what WriteText writes.
func TestPromtoolAcceptsText(t *testing.T) {
	promtool := needTool(t, "promtool")
	s := metrics.NewSet()
	s.Counter("sluice_http_requests_total", "Requests by class.", 3, metrics.L("listener", "web"), metrics.L("class", "2xx"))
	s.Gauge("sluice_sessions", "Active sessions.", 2)
	var h metrics.Histogram
	h.Observe(time.Millisecond)
	s.Histogram("sluice_http_request_duration_seconds", "Request durations.", h.Load(), metrics.L("listener", "web"))
	var out bytes.Buffer
	require.NoError(t, s.WriteText(&out))
	checkWithPromtool(t, promtool, out.Bytes())
}

func needTool(t *testing.T, name string) string {
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

// checkWithPromtool runs promtool check metrics on text and fails on any
// complaint, lint warnings included.
func checkWithPromtool(t *testing.T, promtool string, text []byte) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "promtool: %s", out)
	assert.Empty(t, string(out), "promtool has remarks")
}

// What counting a request costs: one histogram observation, no
// allocation.
func BenchmarkObserve(b *testing.B) {
	var h metrics.Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(time.Duration(i&1023) * time.Millisecond)
	}
}
