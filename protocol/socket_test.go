//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"bytes"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestSocketResultString(t *testing.T) {
	for r, want := range map[SocketResult]string{
		Continue:         "continue",
		WouldBlock:       "would-block",
		Closed:           "closed",
		Error:            "error",
		Error + 1:        "unknown",
		SocketResult(99): "unknown",
	} {
		assert.Equal(t, want, r.String(), "SocketResult(%d)", uint8(r))
	}
}

// requireFlags checks that fd is non-blocking and close-on-exec.
func requireFlags(t *testing.T, fd int) {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	require.NoError(t, err)
	assert.NotZero(t, fl&unix.O_NONBLOCK, "fd %d is blocking", fd)
	fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	require.NoError(t, err)
	assert.NotZero(t, fdfl&unix.FD_CLOEXEC, "fd %d is not close-on-exec", fd)
}

func TestListen(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		lfd, addr := listen(t, ip, ListenConfig{})
		assert.Equal(t, ip, addr.Addr(), "LocalAddr gives the bound address")
		assert.NotZero(t, addr.Port(), "LocalAddr gives the kernel-chosen port")
		requireFlags(t, lfd)

		v, err := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR)
		require.NoError(t, err)
		assert.NotZero(t, v, "SO_REUSEADDR")
		v, err = unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
		require.NoError(t, err)
		assert.Zero(t, v, "SO_REUSEPORT is off by default")
		v, err = unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		require.NoError(t, err)
		assert.NotZero(t, v, "SO_ACCEPTCONN: the socket listens")
		if ip.Is6() {
			// (Linux sets it anyway when binding a specific IPv6 address;
			// it only matters for [::], which these tests do not bind.)
			v, err = unix.GetsockoptInt(lfd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			require.NoError(t, err)
			assert.Equal(t, 1, v, "IPV6_V6ONLY")
		}

		// No connection is waiting.
		_, err = PeerAddr(lfd)
		require.ErrorIs(t, err, unix.ENOTCONN)
	})
}

func TestListenExplicitPort(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		// Find a free port, release it, bind it by number.
		lfd, addr := listen(t, ip, ListenConfig{})
		require.NoError(t, unix.Close(lfd))
		lfd2, err := Listen(addr, ListenConfig{})
		require.NoError(t, err)
		defer unix.Close(lfd2)
		got, err := LocalAddr(lfd2)
		require.NoError(t, err)
		assert.Equal(t, addr, got)
	})
}

func TestListenReusePort(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		t.Run("both", func(t *testing.T) {
			checkFDs(t)
			_, addr := listen(t, ip, ListenConfig{ReusePort: true})
			lfd2, err := Listen(addr, ListenConfig{ReusePort: true})
			require.NoError(t, err, "a second SO_REUSEPORT listener on %v", addr)
			defer unix.Close(lfd2)
			got, err := LocalAddr(lfd2)
			require.NoError(t, err)
			assert.Equal(t, addr, got)
			v, err := unix.GetsockoptInt(lfd2, unix.SOL_SOCKET, unix.SO_REUSEPORT)
			require.NoError(t, err)
			assert.NotZero(t, v, "SO_REUSEPORT")
		})
		for _, tc := range []struct {
			name          string
			first, second bool
		}{
			{"neither", false, false},
			{"first only", true, false},
			{"second only", false, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				checkFDs(t) // the failed Listen must close its socket
				_, addr := listen(t, ip, ListenConfig{ReusePort: tc.first})
				lfd2, err := Listen(addr, ListenConfig{ReusePort: tc.second})
				if err == nil {
					unix.Close(lfd2)
				}
				require.ErrorIs(t, err, unix.EADDRINUSE)
				assert.Equal(t, -1, lfd2)
				var se *os.SyscallError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, "bind", se.Syscall)
			})
		}
	})
}

func TestAcceptEmptyQueue(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		lfd, _ := listen(t, ip, ListenConfig{})
		fd, peer, err := Accept(lfd)
		require.ErrorIs(t, err, ErrWouldBlock)
		assert.Equal(t, -1, fd)
		assert.False(t, peer.IsValid())
		// Twice: nothing changes.
		_, _, err = Accept(lfd)
		require.ErrorIs(t, err, ErrWouldBlock)
	})
}

func TestAcceptNotListening(t *testing.T) {
	checkFDs(t)
	client, _ := newPair(t, loop4)
	fd, _, err := Accept(client.Fd())
	require.Error(t, err)
	assert.Equal(t, -1, fd)
	assert.NotErrorIs(t, err, ErrWouldBlock)
	assert.ErrorIs(t, err, unix.EINVAL)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "accept", se.Syscall)
}

func TestConnectAccept(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		lfd, laddr := listen(t, ip, ListenConfig{})
		cfd := connect(t, laddr) // ConnectResult is nil once writable
		requireFlags(t, cfd)

		sfd, peer := acceptOne(t, lfd)
		defer unix.Close(sfd)
		requireFlags(t, sfd)

		clientLocal, err := LocalAddr(cfd)
		require.NoError(t, err)
		assert.Equal(t, ip, clientLocal.Addr())
		assert.True(t, clientLocal.Addr().Is4() == ip.Is4(), "no IPv4-mapped form")

		serverPeer, err := PeerAddr(sfd)
		require.NoError(t, err)
		assert.Equal(t, clientLocal, serverPeer, "PeerAddr(accepted) == LocalAddr(client)")
		assert.Equal(t, clientLocal, peer, "Accept's address == LocalAddr(client)")

		clientPeer, err := PeerAddr(cfd)
		require.NoError(t, err)
		assert.Equal(t, laddr, clientPeer, "PeerAddr(client) == listener address")
		serverLocal, err := LocalAddr(sfd)
		require.NoError(t, err)
		assert.Equal(t, laddr, serverLocal, "LocalAddr(accepted) == listener address")

		// The queue is empty again.
		_, _, err = Accept(lfd)
		require.ErrorIs(t, err, ErrWouldBlock)
	})
}

func TestConnectRefused(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		// A port that was just free: bind it, then release it.
		lfd, addr := listen(t, ip, ListenConfig{})
		require.NoError(t, unix.Close(lfd))

		fd, err := Connect(addr)
		if err != nil {
			// Loopback may refuse synchronously; that is a valid outcome.
			assert.Equal(t, -1, fd)
			require.ErrorIs(t, err, unix.ECONNREFUSED)
			return
		}
		defer unix.Close(fd)
		rev := waitFor(t, fd, unix.POLLOUT)
		assert.NotZero(t, rev&(unix.POLLERR|unix.POLLHUP), "revents %#x", rev)
		err = ConnectResult(fd)
		require.ErrorIs(t, err, unix.ECONNREFUSED)
		var se *os.SyscallError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "connect", se.Syscall)
	})
}

func TestAddrErrors(t *testing.T) {
	checkFDs(t)
	err := ConnectResult(-1)
	require.ErrorIs(t, err, unix.EBADF)
	_, err = LocalAddr(-1)
	require.ErrorIs(t, err, unix.EBADF)
	_, err = PeerAddr(-1)
	require.ErrorIs(t, err, unix.EBADF)
	require.ErrorIs(t, SetNoDelay(-1, true), unix.EBADF)
}

func TestReadContinueThenWouldBlock(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		payload := randomBytes(4096, 1)
		n, r := client.Write(payload)
		require.Equal(t, len(payload), n)
		require.Equal(t, Continue, r)

		// An empty buffer is full already.
		n, r = server.Read(nil)
		assert.Equal(t, 0, n)
		assert.Equal(t, Continue, r)

		// Fill a 1000-byte buffer: more is pending, so the call that fills
		// it says Continue (earlier calls may say WouldBlock if the data
		// is still on its way).
		buf := make([]byte, 1000)
		got := 0
		for {
			n, r = server.Read(buf[got:])
			got += n
			if r != WouldBlock {
				break
			}
			waitFor(t, server.Fd(), unix.POLLIN)
		}
		require.Equal(t, Continue, r)
		require.Equal(t, len(buf), got)
		require.Equal(t, payload[:1000], buf)

		// Drain the rest into a bigger buffer: it is not filled, so the
		// read stops with WouldBlock.
		rest := make([]byte, 8192)
		got = 0
		for got < len(payload)-1000 {
			n, r = server.Read(rest[got:])
			got += n
			require.Equal(t, WouldBlock, r, "buffer not full: WouldBlock")
			if got < len(payload)-1000 {
				waitFor(t, server.Fd(), unix.POLLIN)
			}
		}
		require.Equal(t, payload[1000:], rest[:got])

		// Nothing left.
		n, r = server.Read(rest)
		assert.Equal(t, 0, n)
		assert.Equal(t, WouldBlock, r)

		// Once everything sent is in the receive queue, one Read with a
		// bigger buffer takes all of it and says WouldBlock: a short read
		// means the queue is empty.
		payload = randomBytes(3000, 9)
		n, r = client.Write(payload)
		require.Equal(t, len(payload), n)
		require.Equal(t, Continue, r)
		waitQueued(t, server.Fd(), len(payload))
		n, r = server.Read(rest)
		require.Equal(t, len(payload), n, "one call drains the queue")
		require.Equal(t, WouldBlock, r)
		require.Equal(t, payload, rest[:n])
		n, r = server.Read(rest)
		assert.Equal(t, 0, n)
		assert.Equal(t, WouldBlock, r)
	})
}

func TestReadClosedAfterFIN(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		for _, how := range []string{"CloseWrite", "Close"} {
			t.Run(how, func(t *testing.T) {
				checkFDs(t)
				client, server := newPair(t, ip)
				payload := []byte("last words before the FIN")
				n, r := client.Write(payload)
				require.Equal(t, len(payload), n)
				require.Equal(t, Continue, r)
				if how == "Close" {
					require.NoError(t, client.Close())
				} else {
					require.NoError(t, client.CloseWrite())
				}

				// Read in small pieces: the data comes first (in earlier
				// calls or in the same one as Closed), then Closed.
				var got []byte
				buf := make([]byte, 7)
				for {
					n, r = server.Read(buf)
					got = append(got, buf[:n]...)
					if r == Closed {
						break
					}
					require.Contains(t, []SocketResult{Continue, WouldBlock}, r)
					if r == WouldBlock {
						waitFor(t, server.Fd(), unix.POLLIN)
					}
				}
				assert.Equal(t, payload, got)

				// Closed again, with nothing.
				n, r = server.Read(buf)
				assert.Equal(t, 0, n)
				assert.Equal(t, Closed, r)
			})
		}
	})
}

func TestReadErrorAfterReset(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		abort(t, client)
		rev := waitFor(t, server.Fd(), unix.POLLIN)
		require.NotZero(t, rev&(unix.POLLERR|unix.POLLHUP), "RST arrived: revents %#x", rev)

		buf := make([]byte, 64)
		n, r := server.Read(buf)
		assert.Equal(t, 0, n)
		assert.Equal(t, Error, r, "ECONNRESET is an abort (Error), not a clean EOF")
		n, r = server.Read(buf)
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)
	})
}

func TestWriteEmpty(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	n, r := client.Write(nil)
	assert.Equal(t, 0, n)
	assert.Equal(t, Continue, r)
	n, r = client.Writev(nil)
	assert.Equal(t, 0, n)
	assert.Equal(t, Continue, r)
	n, r = client.Writev([][]byte{nil, {}, nil})
	assert.Equal(t, 0, n)
	assert.Equal(t, Continue, r)

	// Nothing was sent: a marker written now is the first thing read.
	n, r = client.Write([]byte("x"))
	require.Equal(t, 1, n)
	require.Equal(t, Continue, r)
	got, r := readN(t, server, 1)
	require.Equal(t, Continue, r)
	assert.Equal(t, []byte("x"), got)
}

func TestWriteWouldBlock(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		setBuffers(t, client.Fd(), 64<<10, 0)
		setBuffers(t, server.Fd(), 0, 64<<10)
		payload := randomBytes(4<<20, 2)

		// The peer does not read: the path fills up.
		n, r := client.Write(payload)
		require.Equal(t, WouldBlock, r)
		require.Greater(t, n, 0, "some bytes were accepted")
		require.Less(t, n, len(payload))

		// Exactly the n accepted bytes arrive, and nothing more.
		got, r := readN(t, server, n)
		require.Equal(t, Continue, r)
		requireSameBytes(t, payload[:n], got)
		var extra []byte
		assert.Equal(t, WouldBlock, drain(server, make([]byte, 4096), &extra))
		assert.Empty(t, extra)

		// Resume from n while the peer drains, until all is sent.
		written, rounds := n, 1
		buf := make([]byte, 256<<10)
		for written < len(payload) {
			n, r = client.Write(payload[written:])
			written += n
			if r == Continue {
				require.Equal(t, len(payload), written)
				break
			}
			require.Equal(t, WouldBlock, r)
			rounds++
			require.Equal(t, WouldBlock, drain(server, buf, &got))
			pfd := []unix.PollFd{
				{Fd: int32(client.Fd()), Events: unix.POLLOUT},
				{Fd: int32(server.Fd()), Events: unix.POLLIN},
			}
			pollAll(t, pfd)
		}
		rest, r := readN(t, server, len(payload)-len(got))
		require.Equal(t, Continue, r)
		got = append(got, rest...)
		requireSameBytes(t, payload, got)
		t.Logf("%d bytes in %d Write rounds", len(payload), rounds)
	})
}

func TestWriteClosedAfterReset(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		abort(t, server)
		rev := waitFor(t, client.Fd(), 0)
		require.NotZero(t, rev&(unix.POLLERR|unix.POLLHUP), "RST arrived: revents %#x", rev)

		// The first write reports the pending ECONNRESET, the next ones
		// EPIPE. On Linux the package writes with MSG_NOSIGNAL; elsewhere
		// EPIPE comes with SIGPIPE, which Go ignores for descriptors other
		// than 1 and 2, so the test process lives on.
		n, r := client.Write([]byte("into the void"))
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)
		n, r = client.Write([]byte("again"))
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)
		n, r = client.Writev([][]byte{[]byte("and"), nil, []byte("again")})
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)

		// Prove it was EPIPE (hence a SIGPIPE) and that we survived it.
		_, err := unix.Write(client.Fd(), []byte("x"))
		require.ErrorIs(t, err, unix.EPIPE)

		// Reading says Closed too.
		n, r = client.Read(make([]byte, 8))
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)
	})
}

func TestWriteClosedAfterPeerClose(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	require.NoError(t, server.Close())
	got, r := readUntilClosed(t, client)
	require.Equal(t, Closed, r)
	require.Empty(t, got)

	// The kernel cannot know yet: the first write is accepted and the
	// peer answers it with RST.
	n, r := client.Write([]byte("hello?"))
	require.Equal(t, 6, n)
	require.Equal(t, Continue, r)
	rev := waitFor(t, client.Fd(), 0)
	require.NotZero(t, rev&(unix.POLLERR|unix.POLLHUP), "revents %#x", rev)
	for range 2 {
		n, r = client.Write([]byte("hello?"))
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)
	}
}

func TestWritevOrder(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		bufs := [][]byte{
			nil,
			[]byte("alpha"),
			{},
			[]byte("-beta-"),
			nil,
			nil,
			[]byte("gamma"),
			[]byte("|"),
			{},
		}
		want := bytes.Join(bufs, nil)
		n, r := client.Writev(bufs)
		require.Equal(t, len(want), n)
		require.Equal(t, Continue, r)
		got, r := readN(t, server, len(want))
		require.Equal(t, Continue, r)
		assert.Equal(t, string(want), string(got))
	})
}

func TestWritevManyBuffers(t *testing.T) {
	// Around and well past the 16-iovec batch of one writev call, with
	// empty buffers that must not use up batch slots.
	for _, count := range []int{15, 16, 17, 31, 32, 33, 40, 100, 1000} {
		t.Run(strconv.Itoa(count), func(t *testing.T) {
			checkFDs(t)
			client, server := newPair(t, loop4)
			var bufs [][]byte
			for i := range count {
				if i%3 == 1 {
					bufs = append(bufs, nil)
				}
				b := bytes.Repeat([]byte{byte('A' + i%26)}, 1+i%37)
				b[0] = byte(i)
				bufs = append(bufs, b)
			}
			want := bytes.Join(bufs, nil)
			n, r := client.Writev(bufs)
			require.Equal(t, len(want), n, "%d buffers", count)
			require.Equal(t, Continue, r)
			got, r := readN(t, server, len(want))
			require.Equal(t, Continue, r)
			require.Equal(t, want, got, "%d buffers", count)
			var extra []byte
			assert.Equal(t, WouldBlock, drain(server, make([]byte, 64), &extra))
			assert.Empty(t, extra)
		})
	}
}

func TestWritevDoesNotModifyBufs(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	setBuffers(t, client.Fd(), 64<<10, 0)
	setBuffers(t, server.Fd(), 0, 64<<10)
	payload := randomBytes(2<<20, 3)
	bufs := split(payload, 40, 3)
	type header struct {
		ptr      *byte
		len, cap int
	}
	snapshot := func() []header {
		var hs []header
		for _, b := range bufs {
			h := header{len: len(b), cap: cap(b)}
			if cap(b) > 0 {
				h.ptr = &b[:1][0]
			}
			hs = append(hs, h)
		}
		return hs
	}
	before := snapshot()
	orig := bytes.Clone(payload)

	// A call that stops part-way (WouldBlock), then one that completes.
	n, r := client.Writev(bufs)
	require.Equal(t, WouldBlock, r)
	assert.Equal(t, before, snapshot(), "the slice headers are unchanged")
	assert.True(t, bytes.Equal(orig, payload), "the bytes are unchanged")

	br := startReader(t, server, len(payload))
	for n < len(payload) {
		var m int
		m, r = client.Writev(advance(bufs, n))
		n += m
		if r == WouldBlock {
			waitFor(t, client.Fd(), unix.POLLOUT)
			continue
		}
		require.Equal(t, Continue, r)
	}
	requireSameBytes(t, payload, br.wait(t))
	assert.Equal(t, before, snapshot())
	assert.True(t, bytes.Equal(orig, payload))
}

// TestWritevResume fills the path, then alternately drains the peer and
// calls Writev again with the unwritten remainder, in one goroutine.
func TestWritevResume(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		setBuffers(t, client.Fd(), 64<<10, 0)
		setBuffers(t, server.Fd(), 0, 64<<10)
		payload := randomBytes(6<<20, 4)
		bufs := split(payload, 40, 4)
		require.Equal(t, len(payload), total(bufs))

		var got []byte
		rbuf := make([]byte, 256<<10)
		written, calls, partial, midBuffer := 0, 0, 0, 0
		for written < len(payload) {
			rest := advance(bufs, written)
			n, r := client.Writev(rest)
			calls++
			require.GreaterOrEqual(t, n, 0)
			require.LessOrEqual(t, n, total(rest))
			written += n
			if r == Continue {
				require.Equal(t, len(payload), written, "Continue means everything was written")
				break
			}
			require.Equal(t, WouldBlock, r)
			partial++
			if len(advance(bufs, written)) > 0 {
				// Did this stop inside a buffer rather than between two?
				off := 0
				for _, b := range bufs {
					if written > off && written < off+len(b) {
						midBuffer++
						break
					}
					off += len(b)
				}
			}
			require.Equal(t, WouldBlock, drain(server, rbuf, &got))
			requireSameBytes(t, payload[:len(got)], got) // in order so far
			pollAll(t, []unix.PollFd{
				{Fd: int32(client.Fd()), Events: unix.POLLOUT},
				{Fd: int32(server.Fd()), Events: unix.POLLIN},
			})
		}
		require.Greater(t, partial, 0, "the payload must not fit in the path at once")
		rest, r := readN(t, server, len(payload)-len(got))
		require.Equal(t, Continue, r)
		got = append(got, rest...)
		requireSameBytes(t, payload, got)
		var extra []byte
		assert.Equal(t, WouldBlock, drain(server, rbuf, &extra))
		assert.Empty(t, extra)
		t.Logf("%d bytes in %d buffers: %d Writev calls, %d WouldBlock, %d stopped inside a buffer",
			len(payload), len(bufs), calls, partial, midBuffer)
	})
}

// TestWritevConcurrentReader drains the peer while Writev runs, so that
// writev(2) often takes part of the data and Writev resumes inside a
// buffer on its own, before any WouldBlock.
func TestWritevConcurrentReader(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		setBuffers(t, client.Fd(), 64<<10, 0)
		setBuffers(t, server.Fd(), 0, 64<<10)
		payload := randomBytes(8<<20, 5)
		bufs := split(payload, 41, 5)

		br := startReader(t, server, len(payload))
		written, calls := 0, 0
		for written < len(payload) {
			n, r := client.Writev(advance(bufs, written))
			calls++
			written += n
			if r == Continue {
				break
			}
			require.Equal(t, WouldBlock, r)
			waitFor(t, client.Fd(), unix.POLLOUT)
		}
		require.Equal(t, len(payload), written)
		requireSameBytes(t, payload, br.wait(t))
		t.Logf("%d bytes in %d Writev calls", len(payload), calls)
	})
}

func TestWritevClosedAfterPeerGone(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	setBuffers(t, client.Fd(), 64<<10, 0)
	setBuffers(t, server.Fd(), 0, 64<<10)
	payload := randomBytes(2<<20, 6)
	bufs := split(payload, 40, 6)
	n, r := client.Writev(bufs)
	require.Equal(t, WouldBlock, r)
	require.Greater(t, n, 0)

	abort(t, server)
	waitFor(t, client.Fd(), 0)
	m, r := client.Writev(advance(bufs, n))
	assert.Equal(t, 0, m)
	assert.Equal(t, Closed, r)
}

func TestCloseWrite(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		n, r := client.Write([]byte("ping"))
		require.Equal(t, 4, n)
		require.Equal(t, Continue, r)
		require.NoError(t, client.CloseWrite())

		// The server sees the data, then EOF.
		got, r := readUntilClosed(t, server)
		assert.Equal(t, Closed, r)
		assert.Equal(t, "ping", string(got))

		// The other direction still works.
		n, r = server.Write([]byte("pong"))
		require.Equal(t, 4, n)
		require.Equal(t, Continue, r)
		got, r = readN(t, client, 4)
		require.Equal(t, Continue, r)
		assert.Equal(t, "pong", string(got))

		// Writing after our own shutdown is Closed (EPIPE; SIGPIPE is
		// ignored by Go for this descriptor).
		n, r = client.Write([]byte("late"))
		assert.Equal(t, 0, n)
		assert.Equal(t, Closed, r)

		// Now the server half-closes too: the client reads EOF.
		require.NoError(t, server.CloseWrite())
		got, r = readUntilClosed(t, client)
		assert.Equal(t, Closed, r)
		assert.Empty(t, got)
	})
}

func TestClose(t *testing.T) {
	checkFDs(t)
	client, server := newPair(t, loop4)
	fd := client.Fd()
	require.GreaterOrEqual(t, fd, 0)
	require.NoError(t, client.Close())
	assert.Equal(t, -1, client.Fd())
	require.NoError(t, client.Close(), "closing twice is harmless")
	assert.Equal(t, -1, client.Fd())

	// The peer sees the close.
	_, r := readUntilClosed(t, server)
	assert.Equal(t, Closed, r)

	// A closed socket is unusable: Error, not a panic or a stray fd.
	n, r := client.Read(make([]byte, 4))
	assert.Equal(t, 0, n)
	assert.Equal(t, Error, r)
	n, r = client.Write([]byte("x"))
	assert.Equal(t, 0, n)
	assert.Equal(t, Error, r)
	n, r = client.Writev([][]byte{[]byte("x")})
	assert.Equal(t, 0, n)
	assert.Equal(t, Error, r)
	err := client.CloseWrite()
	require.ErrorIs(t, err, unix.EBADF)
	var se *os.SyscallError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "shutdown", se.Syscall)
}

func TestNewTCPSocket(t *testing.T) {
	checkFDs(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	s := NewTCPSocket(fd)
	assert.Equal(t, fd, s.Fd())
	var sock Socket = &s
	require.NoError(t, sock.Close())
	assert.Equal(t, -1, sock.Fd())
}

func TestSetNoDelay(t *testing.T) {
	forEachFamily(t, func(t *testing.T, ip netip.Addr) {
		client, server := newPair(t, ip)
		for _, fd := range []int{client.Fd(), server.Fd()} {
			require.NoError(t, SetNoDelay(fd, true))
			v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			require.NoError(t, err)
			assert.NotZero(t, v, "TCP_NODELAY on")

			require.NoError(t, SetNoDelay(fd, false))
			v, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			require.NoError(t, err)
			assert.Zero(t, v, "TCP_NODELAY off")
		}
		err := SetNoDelay(-1, true)
		var se *os.SyscallError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "setsockopt", se.Syscall)
	})
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:443", "[2001:db8::5]:65535", "0.0.0.0:0"} {
		ap := netip.MustParseAddrPort(s)
		assert.Equal(t, ap, addrPort(sockaddr(ap)), s)
	}
	// An IPv4-mapped IPv6 address goes out as IPv6 and comes back
	// unmapped, as the kernel would report it for a dual-stack socket.
	mapped := netip.MustParseAddrPort("[::ffff:10.1.2.3]:8080")
	sa, ok := sockaddr(mapped).(*unix.SockaddrInet6)
	require.True(t, ok)
	assert.Equal(t, mapped.Addr().As16(), sa.Addr)
	assert.Equal(t, netip.MustParseAddrPort("10.1.2.3:8080"), addrPort(sa))
	assert.Equal(t, unix.AF_INET6, family(mapped))
	assert.Equal(t, unix.AF_INET, family(netip.MustParseAddrPort("10.1.2.3:1")))

	// Zones: a number is used as is; an unknown name is dropped.
	sa = sockaddr(netip.MustParseAddrPort("[fe80::1%7]:1")).(*unix.SockaddrInet6)
	assert.Equal(t, uint32(7), sa.ZoneId)
	sa = sockaddr(netip.MustParseAddrPort("[fe80::1%no-such-interface-xyz]:1")).(*unix.SockaddrInet6)
	assert.Equal(t, uint32(0), sa.ZoneId)

	// Not an IP socket address.
	assert.False(t, addrPort(&unix.SockaddrUnix{Name: "/x"}).IsValid())
	assert.False(t, addrPort(nil).IsValid())
}
