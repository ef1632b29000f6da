package tcpproxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

var warmUp sync.Once

// env runs one worker for a test, with the test backends and clients it
// needs, and checks at the end that the worker stopped and that the
// process's descriptors and goroutines are back to what they were before
// the test started.
type env struct {
	t    testing.TB
	w    *session.Worker
	runc chan error

	mu      sync.Mutex
	servers []*server
	closers []io.Closer
}

// newEnv starts a worker with cfg and a round-robin cluster "c". The
// baseline (descriptors, goroutines) is taken before anything is created.
func newEnv(t testing.TB, cfg session.Config) *env {
	t.Helper()
	warmUp.Do(func() {
		// The runtime opens its own poller's descriptors on the first
		// network use and keeps them: open them before any baseline.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ln.Close()
	})
	fds, gs := openFDs(t), runtime.NumGoroutine()
	e := &env{t: t, runc: make(chan error, 1)}
	// Registered first, so it runs last: after the test's own cleanups.
	t.Cleanup(func() { e.finish(fds, gs) })
	w, err := session.NewWorker(cfg)
	require.NoError(t, err)
	e.w = w
	go func() { e.runc <- w.Run() }()
	require.NoError(t, w.AddCluster("c", backend.RoundRobin))
	return e
}

// finish stops the worker, closes the clients and the backends, then
// checks that nothing leaked.
func (e *env) finish(fds, gs int) {
	t := e.t
	if e.w != nil {
		select {
		case <-e.w.Done(): // stopped by the test
		default:
			require.NoError(t, e.w.HardStop())
		}
		select {
		case err := <-e.runc:
			assert.NoError(t, err, "Run returned an error")
		case <-time.After(5 * time.Second):
			t.Error("the worker's Run did not return")
		}
		select {
		case <-e.w.Done():
		default:
			t.Error("the worker is not done")
		}
		st, err := e.w.Status()
		assert.NoError(t, err, "a stopped worker still shows its final counters")
		assert.Zero(t, st.Sessions, "no session outlives the worker")
		assert.ErrorIs(t, e.w.AddCluster("late", backend.RoundRobin), session.ErrStopped, "a stopped worker takes no command")
	}
	e.mu.Lock()
	closers, servers := e.closers, e.servers
	e.closers, e.servers = nil, nil
	e.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	for _, s := range servers {
		s.close(t)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > gs {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines leaked: %d before, %d after\n%s", gs, n, buf[:runtime.Stack(buf, true)])
	}
	// Fewer than before is fine: something an earlier test left (an HTTP
	// server's connection, say) may have finished meanwhile.
	n := openFDs(t)
	for n > fds && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		n = openFDs(t)
	}
	if n > fds {
		t.Errorf("descriptors leaked: %d before, %d after\n%s", fds, n, listFDs())
	}
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b bytes.Buffer
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "  %s -> %s\n", e.Name(), l)
	}
	return b.String()
}

// track closes c at the end of the test (before the leak check).
func (e *env) track(c io.Closer) {
	e.mu.Lock()
	e.closers = append(e.closers, c)
	e.mu.Unlock()
}

// listen opens a TCP proxy listener with cfg (cluster "c" unless set).
func (e *env) listen(cfg tcpproxy.Config) (*tcpproxy.Listener, netip.AddrPort) {
	e.t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = "c"
	}
	l, err := tcpproxy.NewListener(cfg)
	require.NoError(e.t, err)
	addr, err := e.w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	require.NoError(e.t, err)
	return l, addr
}

func (e *env) addBackend(cluster, id string, addr netip.AddrPort) {
	e.t.Helper()
	require.NoError(e.t, e.w.AddBackend(cluster, backend.Backend{ID: id, Address: addr}))
}

func (e *env) status() session.Status {
	e.t.Helper()
	st, err := e.w.Status()
	require.NoError(e.t, err)
	return st
}

// dial connects a client to the proxy; it is closed at the end of the test.
func (e *env) dial(addr netip.AddrPort) *net.TCPConn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	require.NoError(e.t, err)
	e.track(c)
	return c.(*net.TCPConn)
}

// waitStats polls the listener's counters until cond holds.
func waitStats(t *testing.T, l *tcpproxy.Listener, cond func(tcpproxy.StatsSnapshot) bool, msg string) tcpproxy.StatsSnapshot {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := l.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			require.Failf(t, "listener counters", "%s; counters are %+v", msg, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// server is a test backend: a goroutine per connection running handle.
type server struct {
	ln       net.Listener
	addr     netip.AddrPort
	accepted atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// server starts a backend; it is closed at the end of the test, after
// the worker.
func (e *env) server(handle func(c *net.TCPConn)) *server {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err)
	s := &server{ln: ln, addr: netip.MustParseAddrPort(ln.Addr().String()), conns: map[net.Conn]struct{}{}}
	e.mu.Lock()
	e.servers = append(e.servers, s)
	e.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			s.accepted.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return s
}

func (s *server) close(t testing.TB) {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("backend %v: handlers did not return", s.addr)
	}
}

// echo copies what it reads back to the client, then passes the client's
// FIN on. It does not use io.Copy: TCP-to-TCP copies splice through pipes
// the runtime keeps in a pool, which would show up as leaked descriptors.
func echo(c *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				c.CloseWrite()
				// Wait for the proxy to close its side, so that the
				// session ends with both FINs relayed.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Read(buf[:1])
			}
			return
		}
	}
}

// silent reads and discards until the connection ends; it never sends.
func silent(c *net.TCPConn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// proxyEcho parses a PROXY header (reading one byte at a time until it
// parses), reports it on hdrs, then echoes the rest.
func proxyEcho(hdrs chan<- proxyproto.Header) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		var got []byte
		one := make([]byte, 1)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := c.Read(one); err != nil {
				return
			}
			got = append(got, one[0])
			h, _, err := proxyproto.Parse(got, proxyproto.ParseOptions{})
			if errors.Is(err, proxyproto.ErrIncomplete) {
				continue
			}
			if err != nil {
				hdrs <- proxyproto.Header{} // report the failure as a zero header
				return
			}
			hdrs <- h
			break
		}
		c.SetReadDeadline(time.Time{})
		echo(c)
	}
}

// refusedAddr returns a loopback address nobody listens on. The port is
// kept bound (without SO_REUSEADDR) until the test ends, so that no other
// socket of this or a concurrent test process can listen on it meanwhile;
// a connect to it is refused because the socket never listens.
func refusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	in4 := sa.(*unix.SockaddrInet4)
	return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
}

// ended reads c until the connection ends and reports how: io.EOF, a
// reset, or another error (a deadline). Bytes read are returned.
func ended(c net.Conn, within time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(within))
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// isClosed reports whether err is a clean or abortive end of connection.
func isClosed(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func requireClosed(t *testing.T, c net.Conn, within time.Duration, msg string) []byte {
	t.Helper()
	got, err := ended(c, within)
	require.Truef(t, isClosed(err), "%s: want EOF or reset, got %v", msg, err)
	return got
}

// stream is a deterministic pseudo-random byte stream, so that a writer
// and a reader can produce and check many megabytes without keeping them.
type stream struct{ r *rand.ChaCha8 }

func newStream(seed byte) *stream {
	var s [32]byte
	s[0] = seed
	return &stream{r: rand.NewChaCha8(s)}
}

func (s *stream) fill(p []byte) { s.r.Read(p) }

func randBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// blackhole is a listening socket with the smallest backlog whose queue
// is full and never accepted, so that the kernel drops further SYNs: a
// connect to it neither succeeds nor fails until the SYN retries give
// up. ok is false when this kernel still completes handshakes for it.
type blackhole struct {
	fd    int
	addr  netip.AddrPort
	conns []net.Conn
}

func newBlackhole(t *testing.T) (*blackhole, bool) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	bh := &blackhole{fd: fd}
	t.Cleanup(bh.close)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	bh.addr = netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue: the first connections complete; once it is
	// full, a connect hangs (its SYN is dropped).
	for range 4 {
		c, err := net.DialTimeout("tcp", bh.addr.String(), 100*time.Millisecond)
		if err != nil {
			var ne net.Error
			return bh, errors.As(err, &ne) && ne.Timeout()
		}
		bh.conns = append(bh.conns, c)
	}
	return bh, false
}

func (bh *blackhole) close() {
	for _, c := range bh.conns {
		c.Close()
	}
	bh.conns = nil
	if bh.fd >= 0 {
		unix.Close(bh.fd)
		bh.fd = -1
	}
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
