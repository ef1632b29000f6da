package protocol

import (
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestListenBacklog reads the accept queue limit back from the kernel: for
// a listening socket, TCP_INFO's tcpi_sacked is sk_max_ack_backlog.
func TestListenBacklog(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	require.NoError(t, err)
	somaxconn, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)

	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		for _, tc := range []struct {
			backlog, want int
		}{
			{0, min(1024, somaxconn)},  // the default
			{-5, min(1024, somaxconn)}, // negative means default too
			{7, min(7, somaxconn)},
			{1 << 20, somaxconn}, // capped by the kernel
		} {
			lfd, _ := listen(t, ip, ListenConfig{Backlog: tc.backlog})
			info, err := unix.GetsockoptTCPInfo(lfd, unix.IPPROTO_TCP, unix.TCP_INFO)
			require.NoError(t, err)
			assert.Equal(t, uint8(10), info.State, "TCP_LISTEN")
			assert.Equal(t, uint32(tc.want), info.Sacked, "backlog %d", tc.backlog)
			assert.Zero(t, info.Unacked, "nothing queued")
		}
	})
}

// TestZeroAllocs: the data path must not allocate on Linux, where writev
// keeps its iovec array on the stack.
func TestZeroAllocs(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	a := make([]byte, 100)
	b := make([]byte, 400)
	c := make([]byte, 524)
	bufs := [][]byte{a, b, c}
	msg := make([]byte, 1024)
	buf := make([]byte, 1024)
	bad := 0

	allocs := testing.AllocsPerRun(200, func() {
		if n, r := client.Writev(bufs); n != 1024 || r != Continue {
			bad++
		}
		if n, r := readSpin(server, buf); n != 1024 || r != Continue {
			bad++
		}
	})
	require.Zero(t, bad, "Writev/Read did not move 1 KiB per call")
	assert.Zero(t, allocs, "allocations per Writev(3 buffers) + Read")

	allocs = testing.AllocsPerRun(200, func() {
		if n, r := client.Write(msg); n != 1024 || r != Continue {
			bad++
		}
		if n, r := readSpin(server, buf); n != 1024 || r != Continue {
			bad++
		}
	})
	require.Zero(t, bad, "Write/Read did not move 1 KiB per call")
	assert.Zero(t, allocs, "allocations per Write + Read")

	// A full batch of 16 iovecs: more than the 8 that x/sys's Writev
	// keeps on the stack before it allocates.
	var many [][]byte
	for i := range 16 {
		many = append(many, msg[i*64:(i+1)*64])
	}
	allocs = testing.AllocsPerRun(200, func() {
		if n, r := client.Writev(many); n != 1024 || r != Continue {
			bad++
		}
		if n, r := readSpin(server, buf); n != 1024 || r != Continue {
			bad++
		}
	})
	require.Zero(t, bad, "Writev(16)/Read did not move 1 KiB per call")
	assert.Zero(t, allocs, "allocations per Writev(16 buffers) + Read")

	// Read that stops with WouldBlock (EAGAIN) does not allocate either.
	allocs = testing.AllocsPerRun(200, func() {
		if n, r := server.Read(buf); n != 0 || r != WouldBlock {
			bad++
		}
	})
	require.Zero(t, bad)
	assert.Zero(t, allocs, "allocations per empty Read")
}

// TestReadFINQueuedBehindData: with the data and the FIN both in the
// receive queue, the data comes first and Closed at the latest on the
// next call, without waiting for another readiness edge (a short read
// may say WouldBlock; the session then keeps reading because its event
// carried the read-closed bit).
func TestReadFINQueuedBehindData(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		payload := []byte("data, then FIN")
		n, r := client.Write(payload)
		require.Equal(t, len(payload), n)
		require.Equal(t, Continue, r)
		require.NoError(t, client.CloseWrite())
		rev := waitFor(t, server.Fd(), unix.POLLRDHUP)
		require.NotZero(t, rev&unix.POLLRDHUP, "FIN arrived: revents %#x", rev)

		buf := make([]byte, 1024)
		n, r = server.Read(buf)
		require.Equal(t, payload, buf[:n], "the data first")
		require.Contains(t, []SocketResult{WouldBlock, Closed}, r)
		if r == WouldBlock {
			n, r = server.Read(buf)
			assert.Equal(t, 0, n)
		}
		assert.Equal(t, Closed, r)
	})
}

// TestReadUrgentData documents a stall: TCP urgent data (MSG_OOB) makes
// recv stop at the urgent mark with bytes still queued behind it. Read
// takes that short read for an empty queue and answers WouldBlock, and an
// edge-triggered poller raises no new edge for bytes that were already
// there, so the session waits forever (until the peer sends more).
// TestReadStopsAtUrgentMark pins down why sessions must honour
// eventloop.Priority: a read stops at a TCP urgent mark with bytes still
// queued, so Read's short-read shortcut answers WouldBlock early, and
// only the EPOLLPRI edge (Priority) tells the session to read on.
func TestReadStopsAtUrgentMark(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	n, r := client.Write([]byte("abc"))
	require.Equal(t, 3, n)
	require.Equal(t, Continue, r)
	_, err := unix.SendmsgN(client.Fd(), []byte("!"), nil, nil, unix.MSG_OOB)
	require.NoError(t, err)
	n, r = client.Write([]byte("def"))
	require.Equal(t, 3, n)
	require.Equal(t, Continue, r)

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(ep)
	require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, server.Fd(),
		&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLPRI | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(server.Fd())}))
	evs := make([]unix.EpollEvent, 1)
	deadline := time.Now().Add(5 * time.Second)
	var got uint32
	for got&unix.EPOLLPRI == 0 && time.Now().Before(deadline) {
		if m, _ := unix.EpollWait(ep, evs, 100); m == 1 {
			got |= evs[0].Events
		}
	}
	require.NotZero(t, got&unix.EPOLLPRI, "urgent data raises EPOLLPRI")

	buf := make([]byte, 64)
	n, r = server.Read(buf)
	assert.Equal(t, "abc", string(buf[:n]))
	assert.Equal(t, WouldBlock, r, "short read at the mark")
	// Reading on, as a session does while Priority is set, gets the rest.
	n, r = server.Read(buf)
	assert.Equal(t, "def", string(buf[:n]))
	n, r = server.Read(buf)
	assert.Equal(t, 0, n)
	assert.Equal(t, WouldBlock, r)
}

// On Linux a TCPSocket reads with recvfrom and writes with sendto and
// sendmsg; a descriptor that is not a socket (a pipe a user wrapped)
// falls back to read, write and writev.
func TestSocketOverAPipe(t *testing.T) {
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	r, w := NewTCPSocket(p[0]), NewTCPSocket(p[1])
	defer r.Close()
	defer w.Close()

	n, res := w.Write([]byte("one "))
	require.Equal(t, Continue, res)
	require.Equal(t, 4, n)
	n, res = w.Writev([][]byte{[]byte("two "), nil, []byte("three")})
	require.Equal(t, Continue, res)
	require.Equal(t, 9, n)

	buf := make([]byte, 64)
	n, res = r.Read(buf)
	assert.Equal(t, "one two three", string(buf[:n]))
	assert.Equal(t, WouldBlock, res, "the pipe is drained")
}

// Writes to a connection the peer reset raise no SIGPIPE: a program that
// asked for SIGPIPE (signal.Notify) would otherwise get one per write to
// a client that went away.
func TestWriteRaisesNoSIGPIPE(t *testing.T) {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGPIPE)
	defer signal.Stop(sig)

	client, server := newPair(t, loop4)
	abort(t, server)
	rev := waitFor(t, client.Fd(), 0)
	require.NotZero(t, rev&(unix.POLLERR|unix.POLLHUP), "RST arrived: revents %#x", rev)
	for range 3 {
		_, r := client.Write([]byte("into the void"))
		assert.Equal(t, Closed, r)
		_, r = client.Writev([][]byte{[]byte("and"), []byte("again")})
		assert.Equal(t, Closed, r)
	}
	select {
	case s := <-sig:
		t.Fatalf("a write raised %v", s)
	case <-time.After(50 * time.Millisecond):
	}

	// The control: a plain write(2) to the same socket does raise it, so
	// the silence above is MSG_NOSIGNAL's, not a signal that got lost.
	_, err := unix.Write(client.Fd(), []byte("x"))
	require.ErrorIs(t, err, unix.EPIPE)
	select {
	case <-sig:
	case <-time.After(5 * time.Second):
		t.Fatal("write(2) with EPIPE raised no SIGPIPE: the check above proves nothing")
	}
	client.Close()
}
