package tcpproxy_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// A TCP listener's metrics count its sessions and bytes; the backend's
// count its connects; promtool accepts the page.
func TestMetricsCountSessions(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{Name: "db"})

	const sessions = 5
	payload := bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < sessions; i++ {
		c := e.dial(addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Write(payload)
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Len(t, got, len(payload))
		c.Close()
	}
	waitStats(t, l, func(st tcpproxy.StatsSnapshot) bool { return st.Sessions == sessions }, "every session closed")

	reg := metrics.NewRegistry(e.w, l)
	s, err := reg.Gather(context.Background())
	require.NoError(t, err)
	db, c, a := metrics.L("listener", "db"), metrics.L("cluster", "c"), metrics.L("backend", "a")
	v, _ := s.Value("sluice_listener_connections_total", db)
	assert.Equal(t, float64(sessions), v)
	v, _ = s.Value("sluice_listener_active_connections", db)
	assert.Zero(t, v)
	v, _ = s.Value("sluice_listener_bytes_in_total", db)
	assert.Equal(t, float64(sessions*len(payload)), v)
	v, _ = s.Value("sluice_backend_connections_total", c, a)
	assert.Equal(t, float64(sessions), v)
	h, _ := s.HistogramOf("sluice_tcp_session_duration_seconds", db)
	assert.Equal(t, uint64(sessions), h.Count())

	var page bytes.Buffer
	require.NoError(t, s.WriteText(&page))
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatal("promtool is required (SLUICE_REQUIRE_TOOLS is set) but not installed")
		}
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = &page
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "promtool: %s", out)
	assert.Empty(t, string(out), "promtool has remarks")
}
