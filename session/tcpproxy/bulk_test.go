package tcpproxy_test

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// loopCPU is the CPU time the worker's loop thread has used: the
// proxy's own cost, apart from the clients and backends of the same
// process (the loop keeps its goroutine on one thread).
func loopCPU(tb testing.TB, w *session.Worker) time.Duration {
	var ts unix.Timespec
	require.NoError(tb, w.Exec(func(*session.Loop) error {
		return unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	}))
	return time.Duration(ts.Nano())
}

// sendAll is a backend that sends n pseudo-random bytes (from seed) and
// closes.
func sendAll(n int64, seed uint64) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		io.Copy(c, io.LimitReader(newNoise(seed), n)) //nolint:errcheck // the reader checks
		c.Close()
	}
}

// noise is a cheap deterministic byte stream.
type noise struct{ r *rand.ChaCha8 }

func newNoise(seed uint64) *noise {
	var s [32]byte
	s[0] = byte(seed)
	return &noise{rand.NewChaCha8(s)}
}

func (n *noise) Read(p []byte) (int, error) { return n.r.Read(p) }

func digest(tb testing.TB, r io.Reader) ([32]byte, int64) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
	require.NoError(tb, err)
	var d [32]byte
	h.Sum(d[:0])
	return d, n
}

func wantDigest(n int64, seed uint64) [32]byte {
	h := sha256.New()
	io.Copy(h, io.LimitReader(newNoise(seed), n)) //nolint:errcheck // in memory
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// A bulk download goes through kernel pipes, intact, and every pipe is
// back in the pool after it; a small exchange never takes one.
func TestBulkTransferSplices(t *testing.T) {
	if !spliceSupported() {
		t.Skip("no splice(2) here")
	}
	e := newEnv(t, session.Config{})
	echoBe := e.server(echo)
	require.NoError(t, e.w.AddCluster("e", backend.RoundRobin))
	e.addBackend("e", "b", echoBe.addr)
	_, echoAddr := e.listen(tcpproxy.Config{Cluster: "e"})
	small := e.dial(echoAddr)
	for range 100 {
		roundTrip(t, small, "a small exchange")
	}
	assert.Zero(t, e.spliced(), "small exchanges copy through a buffer")

	const size = 64 << 20
	be := e.server(sendAll(size, 1))
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})
	c := e.dial(addr)
	got, n := digest(t, c)
	assert.EqualValues(t, size, n)
	assert.Equal(t, wantDigest(size, 1), got, "the bytes arrive as sent")
	c.Close()
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the bulk session ended")
	assert.EqualValues(t, size, st.BytesOut)
	ws := e.status()
	assert.Zero(t, ws.PipesLent, "every pipe went back")
	assert.Zero(t, ws.PipesRefused)
	assert.Positive(t, e.spliced(), "the transfer was spliced")
}

// spliced reports how many pipes the worker made: a bulk relay took
// one. Read from the worker's pool through the loop.
func (e *env) spliced() int {
	var made int
	require.NoError(e.t, e.w.Exec(func(l *session.Loop) error {
		made = l.Pipes().Made()
		return nil
	}))
	return made
}

// Both directions at once, with uploads and downloads of a size that is
// not a multiple of anything, and a half-close in the middle: the echo
// backend gets the client's FIN only after every byte.
func TestBulkEchoBothWays(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	const size = 24<<20 + 12345
	for i := range 3 {
		c := e.dial(addr)
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(c, io.LimitReader(newNoise(uint64(i)), size)) //nolint:errcheck // the digest checks
			c.CloseWrite()
		}()
		got, n := digest(t, c)
		<-done
		assert.EqualValues(t, size, n)
		assert.Equal(t, wantDigest(size, uint64(i)), got)
	}
	assert.Zero(t, e.status().PipesLent)
}

// A client that reads in bursts with pauses makes the spliced relay
// wait for the client's socket to drain, time and again (the pipe
// keeps its bytes, the backend's stay in the kernel): nothing is lost
// and nothing stalls.
func TestSplicedSlowReader(t *testing.T) {
	e := newEnv(t, session.Config{})
	const size = 16 << 20
	be := e.server(sendAll(size, 5))
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	c := e.dial(addr)
	c.SetReadBuffer(64 << 10)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := 0; ; i++ {
		k, err := io.ReadFull(c, buf)
		h.Write(buf[:k])
		n += int64(k)
		if err != nil {
			require.True(t, err == io.EOF || err == io.ErrUnexpectedEOF, "%v", err)
			break
		}
		if i%2 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var d [32]byte
	h.Sum(d[:0])
	assert.EqualValues(t, size, n)
	assert.Equal(t, wantDigest(size, 5), d)
}

// With fewer pipes than bulk transfers, the one without a pipe copies
// through buffers, and its bytes are just as intact.
func TestBulkWithoutPipesCopies(t *testing.T) {
	if !spliceSupported() {
		t.Skip("no splice(2) here")
	}
	e := newEnv(t, session.Config{Pipes: protocol.PipePoolConfig{Max: 1}})
	const size = 32 << 20
	var both sync.WaitGroup // the two transfers start together
	both.Add(2)
	be := e.server(func(c *net.TCPConn) {
		both.Done()
		both.Wait()
		sendAll(size, 7)(c)
	})
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	type result struct {
		d [32]byte
		n int64
	}
	res := make(chan result, 2)
	for range 2 {
		c := e.dial(addr)
		go func() { d, n := digest(t, c); res <- result{d, n} }()
	}
	for range 2 {
		r := <-res
		assert.EqualValues(t, size, r.n)
		assert.Equal(t, wantDigest(size, 7), r.d)
	}
	st := e.status()
	assert.Positive(t, st.PipesRefused, "the second bulk transfer found no pipe")
	assert.Zero(t, st.PipesLent)
}

// A client that resets in the middle of a spliced transfer fails the
// relay; the pipe with bytes left in it is closed, not pooled (the fd
// check at the end of the test sees it gone).
func TestResetDuringSplice(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(sendAll(1<<30, 3))
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})
	c := e.dial(addr)
	_, err := io.ReadFull(c, make([]byte, 4<<20))
	require.NoError(t, err)
	c.SetLinger(0)
	c.Close()
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the relay ended")
	assert.Less(t, st.BytesOut, uint64(1<<30))
	assert.Zero(t, e.status().PipesLent)
}

func spliceSupported() bool { return runtime.GOOS == "linux" }

// BenchmarkBulkTransfer downloads 1 GiB per operation through the proxy
// and reports the loop thread's CPU per GiB, with splicing and with
// copies through buffers (-benchtime 1x for one transfer).
func BenchmarkBulkTransfer(b *testing.B) {
	for _, mode := range []struct {
		name  string
		pipes int
	}{{"copy", -1}, {"splice", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			e := newEnv(b, session.Config{Pipes: protocol.PipePoolConfig{Max: mode.pipes}})
			const size = 1 << 30
			be := e.server(func(c *net.TCPConn) {
				buf := make([]byte, 1<<20)
				c.SetWriteDeadline(time.Now().Add(time.Minute))
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := c.Write(buf); err != nil {
						break
					}
				}
				c.Close()
			})
			e.addBackend("c", "a", be.addr)
			_, addr := e.listen(tcpproxy.Config{})
			b.SetBytes(size)
			b.ReportAllocs()
			var cpu time.Duration
			buf := make([]byte, 1<<20)
			b.ResetTimer()
			for range b.N {
				c := e.dial(addr)
				before := loopCPU(b, e.w)
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
				cpu += loopCPU(b, e.w) - before
				require.NoError(b, err)
				require.EqualValues(b, size, n)
				c.Close()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "proxy-cpu-ms/GiB")
		})
	}
}
