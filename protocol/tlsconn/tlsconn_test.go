package tlsconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/protocol"
)

func testConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2", "http/1.1"}}
}

// clientHello captures the first flight of a real crypto/tls client.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake()
	var out []byte
	buf := make([]byte, 4096)
	for {
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := b.Read(buf)
		require.NoError(t, err)
		out = append(out, buf[:n]...)
		if ok, err := clientHelloComplete(out); ok || err != nil {
			require.NoError(t, err)
			return out
		}
	}
}

func TestClientHelloComplete(t *testing.T) {
	hello := clientHello(t)
	for i := 0; i < len(hello); i++ {
		ok, err := clientHelloComplete(hello[:i])
		require.NoError(t, err, "prefix %d", i)
		require.False(t, ok, "prefix %d", i)
	}
	ok, err := clientHelloComplete(hello)
	require.NoError(t, err)
	assert.True(t, ok)
	// Split over two records, as a client may send it.
	body := hello[5:]
	split := append([]byte{22, 3, 1, 0, 10}, body[:10]...)
	split = append(split, 22, 3, 1, byte((len(body)-10)>>8), byte(len(body)-10))
	split = append(split, body[10:]...)
	ok, err = clientHelloComplete(split)
	require.NoError(t, err)
	assert.True(t, ok, "a ClientHello in two records")
	for _, bad := range []string{"GET / HTTP/1.1\r\n", "\x16\x02\x00\x00\x05", "\x16\x03\x01\x00\x00", "\x17\x03\x03\x00\x05hello", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"} {
		_, err := clientHelloComplete([]byte(bad))
		assert.ErrorIs(t, err, ErrNotClientHello, "%q", bad)
	}
}

// serve drives one server Conn over a raw loopback socket the way a
// session does on its loop: read -> Feed, Poll, flush Output, and once
// established echo the plaintext back.
func serve(t *testing.T, fd int, c *Conn, pool *Pool, wake <-chan struct{}) {
	sock := protocol.NewTCPSocket(fd)
	defer sock.Close()
	buf := make([]byte, 16<<10)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, r := sock.Read(buf)
		if n > 0 {
			c.Feed(buf[:n])
		}
		st := c.Poll(pool, 5*time.Second)
		if out := c.Output(); len(out) > 0 {
			w, _ := sock.Write(out)
			c.Consume(w)
		}
		if st == Failed {
			return
		}
		if st == Established {
			m, err := c.Read(buf)
			if m > 0 {
				c.Write(buf[:m])
				continue
			}
			if err != nil {
				c.CloseWrite()
				if out := c.Output(); len(out) > 0 {
					w, _ := sock.Write(out)
					c.Consume(w)
				}
				return
			}
		}
		if r == protocol.Closed || r == protocol.Error {
			if st != Established {
				c.Abort()
			}
			return
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		select {
		case <-wake:
		default:
			unix.Poll(pfd, 10)
		}
	}
	t.Error("serve: timed out")
}

func listen(t *testing.T) (int, netip.AddrPort) {
	lfd, err := protocol.Listen(netip.MustParseAddrPort("127.0.0.1:0"), protocol.ListenConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(lfd) })
	addr, _ := protocol.LocalAddr(lfd)
	return lfd, addr
}

func accept(t *testing.T, lfd int) int {
	for i := 0; i < 500; i++ {
		fd, _, err := protocol.Accept(lfd)
		if err == nil {
			return fd
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("accept timed out")
	return -1
}

func TestHandshakeThenEchoOnTheLoop(t *testing.T) {
	gs := runtime.NumGoroutine()
	cfg := testConfig(t)
	pool := NewPool(4, 4)
	lfd, addr := listen(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fd := accept(t, lfd)
		wake := make(chan struct{}, 1)
		c := New(cfg, func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		serve(t, fd, c, pool, wake)
		assert.Equal(t, "h2", c.TLS().ConnectionState().NegotiatedProtocol)
	}()
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	for _, msg := range []string{"hello", string(make([]byte, 100<<10))} {
		_, err = conn.Write([]byte(msg))
		require.NoError(t, err)
		got := make([]byte, len(msg))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(conn, got)
		require.NoError(t, err)
		assert.Equal(t, msg, string(got))
	}
	conn.Close()
	<-done
	pool.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > gs {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", gs, n, buf[:runtime.Stack(buf, true)])
	}
}

// Clients that connect and send nothing, or part of a ClientHello, cost
// no goroutine: only a complete ClientHello is admitted to the pool, and
// the pool is bounded.
func TestStalledHandshakesAreBounded(t *testing.T) {
	cfg := testConfig(t)
	pool := NewPool(4, 2)
	defer pool.Close()
	hello := clientHello(t)
	var conns []*Conn
	for i := 0; i < 5000; i++ {
		c := New(cfg, func() {})
		c.Feed(hello[:len(hello)/2])
		require.Equal(t, Hello, c.Poll(pool, 2*time.Second))
		conns = append(conns, c)
	}
	assert.Zero(t, pool.Workers(), "partial ClientHellos hold no goroutine")
	// Complete ClientHellos from clients that then stall: 4 run, 2 wait,
	// the rest are refused.
	admitted, refused := 0, 0
	for i := 0; i < 20; i++ {
		c := conns[i]
		c.Feed(hello[len(hello)/2:])
		switch c.Poll(pool, 2*time.Second) {
		case Handshaking:
			admitted++
		case Failed:
			assert.ErrorIs(t, c.Err(), ErrPoolFull)
			refused++
		}
	}
	assert.Equal(t, 6, admitted)
	assert.Equal(t, 14, refused)
	assert.LessOrEqual(t, pool.Workers(), 4)
	for _, c := range conns[:20] {
		c.Abort()
	}
	require.Eventually(t, func() bool { return pool.Workers() == 0 }, 5*time.Second, 5*time.Millisecond, "aborted handshakes end")
}

func TestHandshakeTimeoutFreesTheWorker(t *testing.T) {
	pool := NewPool(1, 0)
	defer pool.Close()
	hello := clientHello(t)
	woke := make(chan struct{}, 4)
	c := New(testConfig(t), func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	})
	c.Feed(hello)
	require.Equal(t, Handshaking, c.Poll(pool, 150*time.Millisecond))
	start := time.Now()
	// The server's first flight is produced; the client never answers.
	deadline := time.After(5 * time.Second)
	for c.Poll(pool, 0) == Handshaking {
		select {
		case <-woke:
		case <-deadline:
			t.Fatal("the handshake never timed out")
		}
	}
	assert.Equal(t, Failed, c.State())
	assert.Error(t, c.Err())
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	assert.NotEmpty(t, c.Output(), "the server flight was queued for the loop")
	require.Eventually(t, func() bool { return pool.Workers() == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestGarbageIsNotAHandshake(t *testing.T) {
	pool := NewPool(1, 0)
	defer pool.Close()
	c := New(testConfig(t), func() {})
	c.Feed([]byte("GET / HTTP/1.1\r\n\r\n"))
	assert.Equal(t, Failed, c.Poll(pool, time.Second))
	assert.ErrorIs(t, c.Err(), ErrNotClientHello)
	assert.Zero(t, pool.Workers())
}
