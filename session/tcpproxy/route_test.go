package tcpproxy_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// greetingRoute routes on a first line "use CLUSTER\n": it asks for more
// until the line is whole, refuses anything else, and sends a client
// that stops before its line ends to "fallback" when told no more comes;
// with nothing at all it stays undecided.
func greetingRoute(p tcpproxy.Peek) (tcpproxy.Decision, error) {
	line, _, found := bytes.Cut(p.Data, []byte("\n"))
	if !bytes.HasPrefix([]byte("use "), line[:min(len(line), 4)]) {
		return tcpproxy.Decision{}, errors.New("not a greeting")
	}
	switch {
	case found && len(line) > 4:
		return tcpproxy.Decision{Cluster: string(line[4:])}, nil
	case !found && p.Final && len(line) > 0:
		return tcpproxy.Decision{Cluster: "fallback"}, nil
	case !found && (!p.Final || len(line) == 0):
		return tcpproxy.Decision{}, tcpproxy.ErrNeedMore
	}
	return tcpproxy.Decision{}, errors.New("empty greeting")
}

// The routing stage sees the first bytes, asks for more across several
// writes, picks the cluster, and the bytes it saw reach the backend
// first, followed by the rest of the stream.
func TestRouteStage(t *testing.T) {
	e := newEnv(t, session.Config{})
	a, b, fb := e.server(echo), e.server(echo), e.server(echo)
	for _, c := range []string{"a", "b", "fallback"} {
		require.NoError(t, e.w.AddCluster(c, backend.RoundRobin))
	}
	e.addBackend("a", "a1", a.addr)
	e.addBackend("b", "b1", b.addr)
	e.addBackend("fallback", "f1", fb.addr)
	l, addr := e.listen(tcpproxy.Config{Cluster: "a", Route: greetingRoute, RouteTimeout: 200 * time.Millisecond})

	t.Run("split greeting", func(t *testing.T) {
		c := e.dial(addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		for _, part := range []string{"u", "se ", "b", "\npayload"} {
			_, err := c.Write([]byte(part))
			require.NoError(t, err)
			time.Sleep(10 * time.Millisecond) // separate segments
		}
		require.NoError(t, c.CloseWrite())
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		assert.Equal(t, "use b\npayload", string(got), "the peeked bytes are replayed, then the rest")
		assert.EqualValues(t, 1, b.accepted.Load())
		assert.Zero(t, a.accepted.Load())
	})

	t.Run("garbage is refused", func(t *testing.T) {
		c := e.dial(addr)
		_, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		require.NoError(t, err)
		requireClosed(t, c, 3*time.Second, "refused by the route")
		waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.RouteRejected == 1 }, "counted as rejected")
	})

	t.Run("a half greeting decides at the timeout", func(t *testing.T) {
		c := e.dial(addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Write([]byte("use b"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf) // echoed once routed, after RouteTimeout
		require.NoError(t, err)
		assert.Equal(t, "use b", string(buf))
		assert.EqualValues(t, 1, fb.accepted.Load(), "Final let the route fall back")
		c.Close()
	})

	t.Run("silence times out", func(t *testing.T) {
		c := e.dial(addr)
		requireClosed(t, c, 3*time.Second, "nothing to route on")
		waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.RouteTimedOut == 1 }, "counted as timed out")
	})

	t.Run("a client that closes before deciding", func(t *testing.T) {
		c := e.dial(addr)
		_, err := c.Write([]byte("us"))
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		assert.Equal(t, "us", string(got), "a FIN makes it final: routed to the fallback, FIN relayed")
		assert.EqualValues(t, 2, fb.accepted.Load())
	})

	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 5 }, "every session closed")
	assert.EqualValues(t, 3, st.Routed)
}
