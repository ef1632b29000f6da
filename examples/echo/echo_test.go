package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServer runs an echo server on a free loopback port for one test,
// and checks at the end that it stopped and left no descriptor or
// goroutine behind.
func startServer(t *testing.T, idle time.Duration) *server {
	t.Helper()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	s, err := newServer(config{listen: netip.MustParseAddrPort("127.0.0.1:0"), idleTimeout: idle})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	t.Cleanup(func() {
		s.stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("server did not stop")
		}
		// Not require.Eventually: it runs the condition on a goroutine
		// of its own, which would be counted.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > gs {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines leaked: %d before, %d after\n%s", gs, n, buf[:runtime.Stack(buf, true)])
		}
		assert.Equal(t, fds, openFDs(t), "descriptors leaked")
	})
	return s
}

func openFDs(t testing.TB) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func dial(t *testing.T, s *server) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(s.addr))
	require.NoError(t, err)
	return c
}

func TestEchoManyClients(t *testing.T) {
	s := startServer(t, time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, s)
			defer c.Close()
			buf := make([]byte, 512)
			for round := 0; round < 20; round++ {
				msg := []byte{byte(i), byte(round), 'x', 'y'}
				_, err := c.Write(msg)
				assert.NoError(t, err)
				_, err = io.ReadFull(c, buf[:len(msg)])
				assert.NoError(t, err)
				assert.Equal(t, msg, buf[:len(msg)])
			}
		}()
	}
	wg.Wait()
}

// A client that sends much more than it reads gets it all back, in
// order: the server stops reading while its echo waits, instead of
// buffering without bound.
func TestBackpressureBigEcho(t *testing.T) {
	s := startServer(t, time.Minute)
	c := dial(t, s)
	defer c.Close()
	payload := make([]byte, 16<<20)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	// Read nothing for a while: both sides' socket buffers fill.
	time.Sleep(100 * time.Millisecond)
	got := make([]byte, len(payload))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.True(t, bytes.Equal(payload, got), "echo differs")
}

// After the client's FIN the server flushes what it owes, then closes.
func TestHalfCloseFlushesThenCloses(t *testing.T) {
	s := startServer(t, time.Minute)
	c := dial(t, s)
	defer c.Close()
	msg := bytes.Repeat([]byte("half-close "), 1000)
	_, err := c.Write(msg)
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	require.NoError(t, err, "EOF after the echo")
	require.Equal(t, msg, got)
}

func TestIdleClientsAreClosed(t *testing.T) {
	s := startServer(t, 150*time.Millisecond)
	idle := dial(t, s)
	defer idle.Close()
	busy := dial(t, s)
	defer busy.Close()

	start := time.Now()
	// The busy client talks every 50 ms, well inside the timeout.
	stop := time.After(600 * time.Millisecond)
	buf := make([]byte, 1)
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-time.After(50 * time.Millisecond):
			_, err := busy.Write([]byte{'.'})
			require.NoError(t, err)
			busy.SetReadDeadline(time.Now().Add(time.Second))
			_, err = io.ReadFull(busy, buf)
			require.NoError(t, err, "a client that talks is never idle")
		}
	}
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := idle.Read(buf)
	require.ErrorIs(t, err, io.EOF, "the silent client was closed")
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
}

func TestRefusesBeyondMaxConns(t *testing.T) {
	fds := openFDs(t)
	s, err := newServer(config{listen: netip.MustParseAddrPort("127.0.0.1:0"), idleTimeout: time.Minute, maxConns: 2})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	a, b, c := dial(t, s), dial(t, s), dial(t, s)
	defer a.Close()
	defer b.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the third connection is closed")
	c.Close()
	for _, conn := range []*net.TCPConn{a, b} {
		_, err := conn.Write([]byte("ok"))
		require.NoError(t, err)
		got := make([]byte, 2)
		_, err = io.ReadFull(conn, got)
		require.NoError(t, err)
	}
	s.stop()
	require.NoError(t, <-done)
	a.Close()
	b.Close()
	assert.Equal(t, 1, s.stats.refused)
	assert.Equal(t, fds, openFDs(t))
}
