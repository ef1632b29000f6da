package tlsconn

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
)

// echoOnPoller drives one Socket on an epoll poller the way a session
// does: handshake on events, then echo with a 4 KiB buffer, flushing on
// writable edges, until the client's close_notify; then it closes the
// write side (close_notify + FIN) once everything is flushed.
//
// backedUp, when not nil, is closed the first time a Write leaves
// ciphertext pending (the client is not reading).
func echoOnPoller(t *testing.T, fd int, cfg *tls.Config, pool *Pool, backedUp chan struct{}) (*Socket, error) {
	p, err := eventloop.NewPoller()
	require.NoError(t, err)
	defer p.Close()
	events := eventloop.NewEvents(8)
	wake := make(chan struct{}, 1)
	s := NewSocket(fd, cfg, NewScratch(), func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer s.Close()
	require.NoError(t, p.Register(fd, 1, eventloop.InterestRead|eventloop.InterestWrite))
	var r protocol.Readiness
	var buf []byte
	data := make([]byte, 4096)
	eof, shut := false, false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n, err := p.Wait(events, 5*time.Millisecond)
		require.NoError(t, err)
		for i := 0; i < n; i++ {
			_, ev := events.Get(i)
			r.Update(ev)
		}
		select {
		case <-wake:
		default:
		}
		switch s.Handshake(pool, 5*time.Second, &r) {
		case Failed:
			return s, s.Conn().Err()
		case Established:
		default:
			continue
		}
		for progress := true; progress; {
			progress = false
			if s.Pending() && r.Writable() {
				res := s.Flush()
				r.Wrote(res)
				if res == protocol.Error || res == protocol.Closed {
					return s, io.ErrClosedPipe
				}
				progress = res == protocol.Continue
			}
			if len(buf) > 0 && r.Writable() && !s.Pending() {
				n, res := s.Write(buf)
				buf = buf[:copy(buf, buf[n:])]
				r.Wrote(res)
				if backedUp != nil && s.Pending() {
					close(backedUp)
					backedUp = nil
				}
				progress = progress || n > 0
			}
			if !eof && len(buf) < 64<<10 && r.Readable() {
				n, res := s.Read(data)
				r.Read(n, res)
				buf = append(buf, data[:n]...)
				progress = progress || n > 0
				if res == protocol.Closed {
					eof, progress = true, true
				} else if res == protocol.Error {
					return s, io.ErrUnexpectedEOF
				}
			}
		}
		if eof && len(buf) == 0 && !shut {
			shut = true
			s.CloseWrite()
		}
		if shut && !s.Pending() {
			return s, nil
		}
	}
	t.Error("echo: timed out")
	return s, nil
}

// serveEcho accepts one connection on a fresh loopback listener and runs
// echoOnPoller on it (after tune, when set, adjusts the descriptor). The
// result arrives on done.
func serveEcho(t *testing.T, cfg *tls.Config, backedUp chan struct{}, tune func(fd int)) (addr string, done <-chan error, pool *Pool) {
	pool = NewPool(2, 2)
	t.Cleanup(pool.Close)
	lfd, a := listen(t)
	ch := make(chan error, 1)
	go func() {
		fd := accept(t, lfd)
		if tune != nil {
			tune(fd)
		}
		_, err := echoOnPoller(t, fd, cfg, pool, backedUp)
		ch <- err
	}()
	return a.String(), ch, pool
}

// A megabyte each way through the loop-driven socket, with a client that
// reads slowly so that the socket's output fills and Flush must finish
// the records the kernel refused; then close_notify both ways.
func TestSocketEchoesThroughBackpressure(t *testing.T) {
	backedUp := make(chan struct{})
	// Small kernel buffers both ways (fixed sizes also stop loopback
	// autotuning), so that a megabyte cannot hide in them.
	addr, done, _ := serveEcho(t, testConfig(t), backedUp, func(fd int) {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10)
	})
	raw, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, raw.(*net.TCPConn).SetReadBuffer(64<<10))
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	defer conn.Close()
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(msg)
		if err == nil {
			err = conn.CloseWrite()
		}
		werr <- err
	}()
	// Read nothing until the server's output backs up and a Write leaves
	// ciphertext for Flush.
	select {
	case <-backedUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's output never backed up")
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(conn)
	require.NoError(t, err, "the echo ends with the server's close_notify")
	require.NoError(t, <-werr)
	assert.True(t, bytes.Equal(msg, got), "echoed %d of %d bytes", len(got), len(msg))
	require.NoError(t, <-done)
}

// Small messages one at a time: each read decrypts exactly what the
// client sent, with nothing left buffered behind an EAGAIN.
func TestSocketPingPong(t *testing.T) {
	addr, done, _ := serveEcho(t, testConfig(t), nil, nil)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	defer conn.Close()
	got := make([]byte, 64)
	for i := 0; i < 200; i++ {
		msg := bytes.Repeat([]byte{byte(i)}, 1+i%64)
		_, err := conn.Write(msg)
		require.NoError(t, err)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(conn, got[:len(msg)])
		require.NoError(t, err)
		require.Equal(t, msg, got[:len(msg)])
	}
	require.NoError(t, conn.CloseWrite())
	_, err = io.ReadAll(conn)
	require.NoError(t, err)
	require.NoError(t, <-done)
}

// A client that sends garbage gets no handshake and costs no goroutine.
func TestSocketRefusesGarbage(t *testing.T) {
	addr, done, pool := serveEcho(t, testConfig(t), nil, nil)
	conn, err := dialTCP(addr)
	require.NoError(t, err)
	defer conn.Close()
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	assert.ErrorIs(t, <-done, ErrNotClientHello)
	assert.Zero(t, pool.Workers())
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
