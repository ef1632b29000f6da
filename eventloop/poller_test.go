package eventloop_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
)

func newPoller(t *testing.T) (*eventloop.Poller, *eventloop.Events) {
	p, err := eventloop.NewPoller()
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, eventloop.NewEvents(64)
}

// collect waits once and returns the readiness per token.
func collect(t *testing.T, p *eventloop.Poller, ev *eventloop.Events, timeout time.Duration) map[eventloop.Token]eventloop.Ready {
	t.Helper()
	n, err := p.Wait(ev, timeout)
	require.NoError(t, err)
	got := map[eventloop.Token]eventloop.Ready{}
	for i := 0; i < n; i++ {
		tok, r := ev.Get(i)
		got[tok] |= r
	}
	return got
}

func TestEdgeTriggeredReadableNeedsDrainOrNewData(t *testing.T) {
	lfd, addr := listener(t)
	srv, cli := pair(t, lfd, addr)
	defer unix.Close(srv)
	defer unix.Close(cli)
	waitWritable(t, cli)

	p, ev := newPoller(t)
	require.NoError(t, p.Register(srv, 7, eventloop.InterestRead))
	// Nothing to read yet, and read interest only: no event at all.
	assert.Empty(t, collect(t, p, ev, 20*time.Millisecond))

	_, err := unix.Write(cli, []byte("hello"))
	require.NoError(t, err)
	got := collect(t, p, ev, time.Second)
	require.Contains(t, got, eventloop.Token(7))
	assert.True(t, got[7].IsReadable())
	assert.False(t, got[7].IsReadClosed())

	// The data is still unread, but the edge was reported: a level
	// triggered poller would report it again, an edge-triggered one not.
	assert.Empty(t, collect(t, p, ev, 30*time.Millisecond), "second event without a new edge")

	// Drain to EAGAIN; then new data makes a new edge.
	buf := make([]byte, 64)
	n, err := unix.Read(srv, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))
	_, err = unix.Read(srv, buf)
	require.ErrorIs(t, err, unix.EAGAIN)
	assert.Empty(t, collect(t, p, ev, 20*time.Millisecond))

	_, err = unix.Write(cli, []byte("again"))
	require.NoError(t, err)
	got = collect(t, p, ev, time.Second)
	assert.True(t, got[7].IsReadable())
}

func TestWritableEdgeAfterSendBufferDrains(t *testing.T) {
	lfd, addr := listener(t)
	srv, cli := pair(t, lfd, addr)
	defer unix.Close(srv)
	defer unix.Close(cli)
	waitWritable(t, cli)

	p, ev := newPoller(t)
	require.NoError(t, p.Register(cli, 3, eventloop.InterestWrite))
	got := collect(t, p, ev, time.Second)
	require.True(t, got[3].IsWritable(), "a fresh connected socket is writable")
	assert.Empty(t, collect(t, p, ev, 20*time.Millisecond))

	// Fill the send path until EAGAIN: no writable edge while full.
	chunk := make([]byte, 64<<10)
	filled := 0
	for {
		n, err := unix.Write(cli, chunk)
		if err == unix.EAGAIN {
			break
		}
		require.NoError(t, err)
		filled += n
	}
	assert.Empty(t, collect(t, p, ev, 20*time.Millisecond))

	// The peer reads everything: the sender becomes writable again.
	buf := make([]byte, 256<<10)
	read := 0
	deadline := time.Now().Add(5 * time.Second)
	for read < filled && time.Now().Before(deadline) {
		n, err := unix.Read(srv, buf)
		if err == unix.EAGAIN {
			time.Sleep(time.Millisecond)
			continue
		}
		require.NoError(t, err)
		read += n
	}
	require.Equal(t, filled, read)
	got = collect(t, p, ev, time.Second)
	assert.True(t, got[3].IsWritable())
}

func TestReadClosedAndHangUp(t *testing.T) {
	lfd, addr := listener(t)
	p, ev := newPoller(t)

	// Orderly close from the peer: readable + read-closed.
	srv, cli := pair(t, lfd, addr)
	defer unix.Close(srv)
	waitWritable(t, cli)
	require.NoError(t, p.Register(srv, 1, eventloop.InterestRead))
	require.NoError(t, unix.Shutdown(cli, unix.SHUT_WR))
	got := collect(t, p, ev, time.Second)
	assert.True(t, got[1].IsReadable())
	assert.True(t, got[1].IsReadClosed())
	assert.False(t, got[1].IsError())
	unix.Close(cli)

	// Reset from the peer (linger 0): error and hang-up.
	srv2, cli2 := pair(t, lfd, addr)
	defer unix.Close(srv2)
	waitWritable(t, cli2)
	require.NoError(t, p.Register(srv2, 2, eventloop.InterestBoth))
	collect(t, p, ev, 50*time.Millisecond) // the first writable edge
	require.NoError(t, unix.SetsockoptLinger(cli2, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
	unix.Close(cli2)
	got = collect(t, p, ev, time.Second)
	assert.True(t, got[2].IsHangUp(), "got %v", got[2])
	assert.True(t, got[2].IsError(), "got %v", got[2])
}

func TestConnectRefusedReportsError(t *testing.T) {
	lfd, err := protocol.Listen(netip.MustParseAddrPort("127.0.0.1:0"), protocol.ListenConfig{})
	require.NoError(t, err)
	addr, err := protocol.LocalAddr(lfd)
	require.NoError(t, err)
	unix.Close(lfd) // nobody listens there any more
	fd, err := protocol.Connect(addr)
	require.NoError(t, err)
	defer unix.Close(fd)
	p, ev := newPoller(t)
	require.NoError(t, p.Register(fd, 9, eventloop.InterestBoth))
	got := collect(t, p, ev, time.Second)
	assert.True(t, got[9].IsError() || got[9].IsHangUp(), "got %v", got[9])
	assert.ErrorIs(t, protocol.ConnectResult(fd), unix.ECONNREFUSED)
}

func TestDeregisterStopsEvents(t *testing.T) {
	lfd, addr := listener(t)
	srv, cli := pair(t, lfd, addr)
	defer unix.Close(srv)
	defer unix.Close(cli)
	p, ev := newPoller(t)
	require.NoError(t, p.Register(srv, 4, eventloop.InterestRead))
	require.NoError(t, p.Deregister(srv))
	_, err := unix.Write(cli, []byte("x"))
	require.NoError(t, err)
	assert.Empty(t, collect(t, p, ev, 30*time.Millisecond))
}

func TestReregisterChangesTokenAndInterest(t *testing.T) {
	lfd, addr := listener(t)
	srv, cli := pair(t, lfd, addr)
	defer unix.Close(srv)
	defer unix.Close(cli)
	p, ev := newPoller(t)
	require.NoError(t, p.Register(srv, 4, eventloop.InterestRead))
	require.NoError(t, p.Reregister(srv, 5, eventloop.InterestBoth))
	got := collect(t, p, ev, time.Second)
	assert.NotContains(t, got, eventloop.Token(4))
	assert.True(t, got[5].IsWritable())
}

func TestReservedTokensAreRefused(t *testing.T) {
	lfd, _ := listener(t)
	p, _ := newPoller(t)
	assert.ErrorIs(t, p.Register(lfd, eventloop.NoToken, eventloop.InterestRead), eventloop.ErrReservedToken)
	assert.ErrorIs(t, p.Register(lfd, eventloop.MaxToken+1, eventloop.InterestRead), eventloop.ErrReservedToken)
	assert.NoError(t, p.Register(lfd, eventloop.MaxToken, eventloop.InterestRead))
}

func TestReadyString(t *testing.T) {
	assert.Equal(t, "none", eventloop.Ready(0).String())
	assert.Equal(t, "readable|read-closed", (eventloop.Readable | eventloop.ReadClosed).String())
	assert.True(t, eventloop.HangUp.IsHangUp())
	assert.False(t, eventloop.ReadClosed.IsHangUp())
	assert.Equal(t, eventloop.Readable|eventloop.ReadClosed|eventloop.Error|eventloop.Priority, eventloop.InterestRead.Ready())
}
