package tcpproxy_test

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

func TestSmoke(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})
	assert.Equal(t, session.TCP, l.Protocol())

	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	got := make([]byte, 5)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	require.NoError(t, c.CloseWrite())
	rest, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Empty(t, rest)

	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes after both FINs")
	assert.EqualValues(t, 5, st.BytesIn)
	assert.EqualValues(t, 5, st.BytesOut)
	assert.Zero(t, st.Reset)
	assert.EqualValues(t, 1, be.accepted.Load())
}
