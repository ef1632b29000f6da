package pipe_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/pipe"
)

// rig is client ⇄ [front | pipe | back] ⇄ server: the test holds the
// client and server ends as net.Conns, the pipe's two sockets are raw
// and driven by a loop.
type rig struct {
	client, server *net.TCPConn
	loop           *eventloop.Loop
	pool           *protocol.Pool
	p              *pipe.Pipe
	front, back    protocol.TCPSocket
	result         chan pipe.Status
	errc           chan error
	finished       bool // on the loop: the pipe ended and its sockets are closed
}

type handler struct{ r *rig }

func (h handler) Event(t eventloop.Token, rd eventloop.Ready) {
	if h.r.finished {
		return // a retry timer booked before the end, or an event of its batch
	}
	h.r.p.UpdateReadiness(pipe.Side(t), rd)
	switch st := h.r.p.Ready(); st {
	case pipe.Done, pipe.Failed:
		h.r.finish(st)
	case pipe.NeedBuffer:
		h.r.loop.Timers().Schedule(eventloop.TimerKey{Token: 9}, 5*time.Millisecond)
	}
}

func (h handler) Timeout(eventloop.Token, eventloop.TimerName) { h.Event(pipe.Front.Token(), 0) }

func (h handler) Panic(t eventloop.Token, v any, stack []byte) { panic(v) }

func (r *rig) finish(st pipe.Status) {
	r.finished = true
	r.p.Release()
	r.loop.Poller().Deregister(r.front.Fd())
	r.loop.Poller().Deregister(r.back.Fd())
	r.front.Close()
	r.back.Close()
	r.result <- st
	r.loop.Stop()
}

// rawPair accepts one connection on a fresh listener: the accepted end
// is raw (for the pipe), the dialled end a net.Conn (for the test).
func rawPair(t *testing.T) (raw int, conn *net.TCPConn) {
	t.Helper()
	lfd, err := protocol.Listen(netip.MustParseAddrPort("127.0.0.1:0"), protocol.ListenConfig{})
	require.NoError(t, err)
	defer unix.Close(lfd)
	addr, _ := protocol.LocalAddr(lfd)
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	require.NoError(t, err)
	for i := 0; i < 500; i++ {
		fd, _, err := protocol.Accept(lfd)
		if err == nil {
			return fd, c
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("accept timed out")
	return -1, nil
}

func openFDs(t *testing.T) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// onLoop runs f on the rig's loop, where the pipe and pool live.
func (r *rig) onLoop(t *testing.T, f func()) {
	done := make(chan struct{})
	require.NoError(t, r.loop.Post(func() { f(); close(done) }))
	<-done
}

// stalled returns the buffers lent when the pipe read nothing from the
// client for 20 ms, and -1 while it still reads.
func (r *rig) stalled(t *testing.T) int {
	var before, after uint64
	var lent int
	r.onLoop(t, func() { before = r.p.BytesIn() })
	time.Sleep(20 * time.Millisecond)
	r.onLoop(t, func() { after, lent = r.p.BytesIn(), r.pool.Lent() })
	if before != after {
		return -1
	}
	return lent
}

func newRig(t *testing.T, pool protocol.PoolConfig) *rig {
	t.Helper()
	fds := openFDs(t)
	r := &rig{result: make(chan pipe.Status, 1), errc: make(chan error, 1)}
	var ffd, bfd int
	ffd, r.client = rawPair(t)
	bfd, r.server = rawPair(t)
	r.front, r.back = protocol.NewTCPSocket(ffd), protocol.NewTCPSocket(bfd)
	r.pool = protocol.NewPool(pool)
	r.p = pipe.New(r.pool, &r.front, &r.back)
	var err error
	r.loop, err = eventloop.New(eventloop.Config{})
	require.NoError(t, err)
	require.NoError(t, r.loop.Poller().Register(ffd, pipe.Front.Token(), eventloop.InterestBoth))
	require.NoError(t, r.loop.Poller().Register(bfd, pipe.Back.Token(), eventloop.InterestBoth))
	go func() { r.errc <- r.loop.Run(handler{r}) }()
	t.Cleanup(func() {
		r.client.Close()
		r.server.Close()
		select {
		case <-r.loop.Done():
		case <-time.After(5 * time.Second):
			t.Error("pipe did not finish")
			r.loop.Stop()
			<-r.loop.Done()
		}
		assert.Zero(t, r.pool.Lent(), "buffers returned")
		assert.Equal(t, fds, openFDs(t), "descriptors closed")
	})
	return r
}

func TestRelayBothWaysAndHalfClose(t *testing.T) {
	r := newRig(t, protocol.PoolConfig{})
	_, err := r.client.Write([]byte("request"))
	require.NoError(t, err)
	got := make([]byte, 7)
	_, err = io.ReadFull(r.server, got)
	require.NoError(t, err)
	assert.Equal(t, "request", string(got))

	// The client is done sending: the server sees EOF, and can still
	// answer through the other direction.
	require.NoError(t, r.client.CloseWrite())
	r.server.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(r.server)
	require.NoError(t, err)
	assert.Empty(t, rest)
	_, err = r.server.Write([]byte("response after the client's FIN"))
	require.NoError(t, err)
	require.NoError(t, r.server.CloseWrite())
	r.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	back, err := io.ReadAll(r.client)
	require.NoError(t, err)
	assert.Equal(t, "response after the client's FIN", string(back))
	assert.Equal(t, pipe.Done, <-r.result)
	assert.EqualValues(t, 7, r.p.BytesIn())
	assert.EqualValues(t, len(back), r.p.BytesOut())
}

func TestBackpressureBoundsBuffering(t *testing.T) {
	// One small buffer per direction at most: a server that does not read
	// stops the pipe from reading the client, and the bytes wait in the
	// kernel, not in the proxy.
	r := newRig(t, protocol.PoolConfig{Size: 4096, Max: 2})
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		_, err := r.client.Write(payload)
		if err == nil {
			err = r.client.CloseWrite()
		}
		werr <- err
	}()
	require.Eventually(t, func() bool { return r.stalled(t) >= 0 }, 10*time.Second, time.Millisecond, "the pipe stops reading the client")
	var in uint64
	var awaitsBack bool
	r.onLoop(t, func() { in, awaitsBack = r.p.BytesIn(), r.p.Awaits(pipe.Back) })
	assert.Less(t, in, uint64(len(payload)), "the rest waits in the client's kernel buffers, not in the proxy")
	// Whether it awaits the client too depends on the moment (its last
	// bytes may all have gone to the server's kernel buffer); the
	// simulation checks that exactly (session/sim, seed tcp/44).
	assert.True(t, awaitsBack, "the pipe waits on the server to take the bytes")
	got, err := io.ReadAll(r.server)
	require.NoError(t, err)
	require.NoError(t, <-werr)
	assert.True(t, bytes.Equal(payload, got), "payload intact and in order")
	r.server.CloseWrite()
	assert.Equal(t, pipe.Done, <-r.result)
}

func TestResetFailsThePipe(t *testing.T) {
	r := newRig(t, protocol.PoolConfig{})
	_, err := r.client.Write([]byte("x"))
	require.NoError(t, err)
	one := make([]byte, 1)
	_, err = io.ReadFull(r.server, one)
	require.NoError(t, err)
	r.server.SetLinger(0)
	r.server.Close() // RST
	assert.Equal(t, pipe.Failed, <-r.result)
}

func TestPoolExhaustionWaitsForABuffer(t *testing.T) {
	// One buffer for two directions. The server does not read, so the
	// client→server direction ends up holding the only buffer, full; the
	// server's answer must wait for it (NeedBuffer, retried on a timer),
	// and once the server reads, everything flows and nothing is lost.
	r := newRig(t, protocol.PoolConfig{Size: 1024, Max: 1})
	const size = 64 << 20
	go func() {
		r.client.Write(bytes.Repeat([]byte("a"), size))
		r.client.CloseWrite()
	}()
	require.Eventually(t, func() bool { return r.stalled(t) == 1 }, 10*time.Second, time.Millisecond, "client→server stalls on the full buffer")
	go func() {
		r.server.Write(bytes.Repeat([]byte("b"), 100000))
		r.server.CloseWrite()
	}()
	require.Eventually(t, func() bool {
		var n uint64
		r.onLoop(t, func() { n = r.pool.Exhausted() })
		return n > 0
	}, 5*time.Second, time.Millisecond, "the answer waits for a buffer")
	toClientc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r.client)
		toClientc <- b
	}()
	toServer, err := io.ReadAll(r.server)
	require.NoError(t, err)
	assert.Len(t, toServer, size)
	assert.Len(t, <-toClientc, 100000)
	assert.Equal(t, pipe.Done, <-r.result)
}

// Urgent data makes a read stop at the urgent mark with bytes queued
// behind it; the pipe must read on (Priority) rather than wait for an
// edge that will not come.
func TestUrgentDataDoesNotStall(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("EPOLLPRI is Linux's")
	}
	r := newRig(t, protocol.PoolConfig{})
	raw, err := r.client.SyscallConn()
	require.NoError(t, err)
	_, err = r.client.Write([]byte("abc"))
	require.NoError(t, err)
	var serr error
	raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), []byte("!"), nil, nil, unix.MSG_OOB)
		return true
	})
	require.NoError(t, serr)
	_, err = r.client.Write([]byte("def"))
	require.NoError(t, err)
	// No FIN, no more data: only the urgent edge can move "def".
	got := make([]byte, 6)
	r.server.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadFull(r.server, got)
	require.NoError(t, err, "got %q", got)
	assert.Equal(t, "abcdef", string(got), "the urgent byte itself is out of band and not relayed")
	r.client.CloseWrite()
	r.server.CloseWrite()
	assert.Equal(t, pipe.Done, <-r.result)
}
