//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// ioTimeout bounds every wait for readiness; a loopback test that needs
// longer is broken, not slow.
const ioTimeout = 10 * time.Second

var (
	loop4 = netip.MustParseAddr("127.0.0.1")
	loop6 = netip.MustParseAddr("::1")
)

// The interface is what the state machines hold; TCPSocket must satisfy it.
var _ Socket = (*TCPSocket)(nil)

// countFDs is the number of descriptors this process has open (Linux).
// The directory's own descriptor is included, the same way each time.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// checkFDs notes the open descriptor count and, once the test and every
// cleanup registered after this call have run, requires it to be back
// where it was. Call it first thing in a test.
func checkFDs(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	before := countFDs(t)
	t.Cleanup(func() {
		assert.Equal(t, before, countFDs(t), "descriptors leaked: /proc/self/fd count differs from the test's start")
	})
}

// forEachFamily runs f as an "ipv4" subtest on 127.0.0.1 and an "ipv6"
// subtest on ::1; the IPv6 one is skipped when ::1 cannot be bound.
func forEachFamily(t *testing.T, f func(t *testing.T, ip netip.Addr)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		ip   netip.Addr
	}{{"ipv4", loop4}, {"ipv6", loop6}} {
		t.Run(tc.name, func(t *testing.T) {
			checkFDs(t)
			if tc.ip.Is6() {
				requireIPv6(t)
			}
			f(t, tc.ip)
		})
	}
}

var (
	ipv6Once sync.Once
	ipv6Err  error
)

// requireIPv6 skips the test when [::1] cannot be bound.
func requireIPv6(t testing.TB) {
	t.Helper()
	ipv6Once.Do(func() {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
		if err != nil {
			ipv6Err = err
			return
		}
		defer unix.Close(fd)
		ipv6Err = unix.Bind(fd, &unix.SockaddrInet6{Addr: loop6.As16()})
	})
	if ipv6Err != nil {
		t.Skipf("cannot bind [::1]: %v", ipv6Err)
	}
}

// listen opens a listening socket on ip:0 with cfg, closed with the test,
// and returns it with its bound address.
func listen(t testing.TB, ip netip.Addr, cfg ListenConfig) (int, netip.AddrPort) {
	t.Helper()
	lfd, err := Listen(netip.AddrPortFrom(ip, 0), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(lfd) })
	addr, err := LocalAddr(lfd)
	require.NoError(t, err)
	return lfd, addr
}

// waitFor polls fd until it reports one of events (POLLERR, POLLHUP and
// POLLNVAL are always reported) and returns what it reported. events 0
// waits for an error or hang-up only. It fails the test after ioTimeout.
func waitFor(t testing.TB, fd int, events int16) int16 {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	pollAll(t, pfd)
	return pfd[0].Revents
}

// pollAll polls pfd until at least one entry is ready, failing the test
// after ioTimeout. The Revents fields hold the answer.
func pollAll(t testing.TB, pfd []unix.PollFd) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			require.FailNowf(t, "poll timed out", "no readiness within %v: %+v", ioTimeout, pfd)
		}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		require.NoError(t, err)
		if n > 0 {
			return
		}
	}
}

// acceptOne waits for a connection on lfd and accepts it.
func acceptOne(t testing.TB, lfd int) (int, netip.AddrPort) {
	t.Helper()
	for {
		fd, peer, err := Accept(lfd)
		if err == nil {
			return fd, peer
		}
		require.ErrorIs(t, err, ErrWouldBlock)
		waitFor(t, lfd, unix.POLLIN)
	}
}

// connect starts a connection to addr and waits until it is established.
// The descriptor is closed with the test.
func connect(t testing.TB, addr netip.AddrPort) int {
	t.Helper()
	fd, err := Connect(addr)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	rev := waitFor(t, fd, unix.POLLOUT)
	require.NotZero(t, rev&unix.POLLOUT, "connect: revents %#x", rev)
	require.NoError(t, ConnectResult(fd))
	return fd
}

// newPair returns both ends of one loopback TCP connection on ip. The
// sockets and their listener are closed with the test (Close is
// idempotent, so a test may close them earlier).
func newPair(t testing.TB, ip netip.Addr) (client, server *TCPSocket) {
	t.Helper()
	lfd, laddr := listen(t, ip, ListenConfig{})
	cfd, err := Connect(laddr)
	require.NoError(t, err)
	client = &TCPSocket{fd: cfd}
	t.Cleanup(func() { client.Close() })
	waitFor(t, cfd, unix.POLLOUT)
	require.NoError(t, ConnectResult(cfd))
	sfd, _ := acceptOne(t, lfd)
	s := NewTCPSocket(sfd)
	server = &s
	t.Cleanup(func() { server.Close() })
	return client, server
}

// abort resets the connection: SO_LINGER 0, then close sends RST.
func abort(t testing.TB, s *TCPSocket) {
	t.Helper()
	require.NoError(t, unix.SetsockoptLinger(s.Fd(), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}))
	require.NoError(t, s.Close())
}

// setBuffers shrinks a socket's kernel buffers so that a few hundred KiB
// fill the path; it also turns autotuning off, keeping runs alike.
func setBuffers(t testing.TB, fd, sndbuf, rcvbuf int) {
	t.Helper()
	if sndbuf > 0 {
		require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf))
	}
	if rcvbuf > 0 {
		require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf))
	}
}

// waitQueued waits until at least n bytes are in fd's receive queue,
// looking with MSG_PEEK (which consumes nothing).
func waitQueued(t testing.TB, fd, n int) {
	t.Helper()
	peek := make([]byte, n)
	deadline := time.Now().Add(ioTimeout)
	for {
		waitFor(t, fd, unix.POLLIN)
		m, _, err := unix.Recvfrom(fd, peek, unix.MSG_PEEK)
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			require.NoError(t, err)
		}
		if m >= n {
			return
		}
		require.True(t, time.Now().Before(deadline), "only %d of %d bytes queued after %v", m, n, ioTimeout)
		runtime.Gosched()
	}
}

// readN reads until want bytes arrived or the socket stops with Closed
// or Error, polling on WouldBlock. It returns the bytes and the last
// result.
func readN(t testing.TB, s *TCPSocket, want int) ([]byte, SocketResult) {
	t.Helper()
	got := make([]byte, 0, want)
	buf := make([]byte, 64<<10)
	for len(got) < want {
		p := buf[:min(len(buf), want-len(got))]
		n, r := s.Read(p)
		got = append(got, p[:n]...)
		switch r {
		case Continue:
		case WouldBlock:
			if len(got) < want {
				waitFor(t, s.Fd(), unix.POLLIN)
			}
		default:
			return got, r
		}
	}
	return got, Continue
}

// readUntilClosed reads everything until the socket reports Closed (or
// Error) and returns the bytes and that result.
func readUntilClosed(t testing.TB, s *TCPSocket) ([]byte, SocketResult) {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, r := s.Read(buf)
		got = append(got, buf[:n]...)
		switch r {
		case Continue:
		case WouldBlock:
			waitFor(t, s.Fd(), unix.POLLIN)
		default:
			return got, r
		}
	}
}

// drain reads whatever is available now, appending it to *got, and
// returns the result that stopped it (WouldBlock unless the peer went).
func drain(s *TCPSocket, buf []byte, got *[]byte) SocketResult {
	for {
		n, r := s.Read(buf)
		*got = append(*got, buf[:n]...)
		if r != Continue {
			return r
		}
	}
}

// readSpin fills p from s without allocating, spinning on WouldBlock
// (loopback data is normally there already). It gives up after
// ioTimeout and returns what it has.
func readSpin(s *TCPSocket, p []byte) (int, SocketResult) {
	total := 0
	var deadline time.Time
	for {
		n, r := s.Read(p[total:])
		total += n
		if r != WouldBlock {
			return total, r
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(ioTimeout)
		} else if time.Now().After(deadline) {
			return total, r
		}
		runtime.Gosched()
	}
}

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	p := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	_, _ = rng.Read(p)
	return p
}

// split cuts payload into parts buffers of random lengths at random
// points; equal cut points make empty buffers, and a nil buffer is put
// in front, in the middle and at the end.
func split(payload []byte, parts int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cuts := make([]int, parts-1)
	for i := range cuts {
		cuts[i] = rng.IntN(len(payload) + 1)
	}
	// Force a few empty buffers: repeat some cut points.
	for i := 3; i < len(cuts); i += 7 {
		cuts[i] = cuts[i-1]
	}
	slices.Sort(cuts)
	bufs := [][]byte{nil}
	prev := 0
	for i, c := range cuts {
		bufs = append(bufs, payload[prev:c:c])
		prev = c
		if i == len(cuts)/2 {
			bufs = append(bufs, nil)
		}
	}
	bufs = append(bufs, payload[prev:], nil)
	return bufs
}

// advance is bufs without their first n bytes: what a caller of Writev
// passes on the next call after n were written. bufs is not modified.
func advance(bufs [][]byte, n int) [][]byte {
	out := make([][]byte, 0, len(bufs))
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		out = append(out, b[n:])
		n = 0
	}
	return out
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// backgroundReader reads s in its own goroutine until want bytes arrived,
// the socket stops, or the test ends; wait returns what it read. A
// cleanup stops it before the sockets close.
type backgroundReader struct {
	stop atomic.Bool
	done chan struct{}
	got  []byte
	res  SocketResult
	err  error
}

func startReader(t testing.TB, s *TCPSocket, want int) *backgroundReader {
	t.Helper()
	br := &backgroundReader{done: make(chan struct{})}
	fd := s.Fd()
	go func() {
		defer close(br.done)
		br.got = make([]byte, 0, want)
		buf := make([]byte, 256<<10)
		deadline := time.Now().Add(ioTimeout)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for len(br.got) < want && !br.stop.Load() {
			n, r := s.Read(buf[:min(len(buf), want-len(br.got))])
			br.got = append(br.got, buf[:n]...)
			br.res = r
			switch r {
			case Continue:
				continue
			case WouldBlock:
			default:
				return
			}
			if time.Now().After(deadline) {
				br.err = os.ErrDeadlineExceeded
				return
			}
			// Short poll slices so that stop is seen promptly.
			if _, err := unix.Poll(pfd, 50); err != nil && err != unix.EINTR {
				br.err = err
				return
			}
		}
	}()
	t.Cleanup(func() {
		br.stop.Store(true)
		<-br.done
	})
	return br
}

func (br *backgroundReader) wait(t testing.TB) []byte {
	t.Helper()
	select {
	case <-br.done:
	case <-time.After(2 * ioTimeout):
		require.FailNow(t, "background reader did not finish")
	}
	require.NoError(t, br.err)
	return br.got
}

// requireSameBytes compares big payloads without dumping them.
func requireSameBytes(t testing.TB, want, got []byte) {
	t.Helper()
	require.Equal(t, len(want), len(got), "length")
	if !bytes.Equal(want, got) {
		i := 0
		for i < len(want) && want[i] == got[i] {
			i++
		}
		require.FailNowf(t, "bytes differ", "first difference at offset %d of %d", i, len(want))
	}
}
