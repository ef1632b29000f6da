package eventloop_test

import (
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/protocol"
)

// listener opens a loopback listening socket and returns it with its
// address; it is closed with the test.
func listener(t testing.TB) (int, netip.AddrPort) {
	t.Helper()
	lfd, err := protocol.Listen(netip.MustParseAddrPort("127.0.0.1:0"), protocol.ListenConfig{Backlog: 8192})
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(lfd) })
	addr, err := protocol.LocalAddr(lfd)
	require.NoError(t, err)
	return lfd, addr
}

// pair returns both ends of one loopback TCP connection, non-blocking.
// The caller closes them.
func pair(t testing.TB, lfd int, addr netip.AddrPort) (server, client int) {
	t.Helper()
	client, err := protocol.Connect(addr)
	require.NoError(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for {
		fd, _, err := protocol.Accept(lfd)
		if err == nil {
			return fd, client
		}
		require.ErrorIs(t, err, protocol.ErrWouldBlock)
		require.True(t, time.Now().Before(deadline), "accept timed out")
		pfd := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
		unix.Poll(pfd, 100)
	}
}

// waitWritable blocks until fd's connect completes.
func waitWritable(t testing.TB, fd int) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	_, err := unix.Poll(pfd, 5000)
	require.NoError(t, err)
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("descriptor counting reads /proc/self/fd")
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, time.Millisecond, msg)
}

// checkGoroutines fails the test if goroutines started during it are
// still alive once it ends.
func checkGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines leaked: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}
