package tcpproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// 1. Many clients at once, random payloads, both directions, exact bytes.
func TestEchoManyConcurrentClients(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})

	const clients = 50
	rng := rand.New(rand.NewPCG(1, 2))
	payloads := make([][]byte, clients)
	total := 0
	for i := range payloads {
		payloads[i] = randBytes(rng, 1+rng.IntN(96<<10))
		total += len(payloads[i])
	}
	conns := make([]*net.TCPConn, clients)
	for i := range conns {
		conns[i] = e.dial(addr)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(2)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { // writer
			defer wg.Done()
			_, err := c.Write(payloads[i])
			if assert.NoError(t, err, "client %d write", i) {
				assert.NoError(t, c.CloseWrite())
			}
		}()
		go func() { // reader
			defer wg.Done()
			got, err := io.ReadAll(c)
			assert.NoError(t, err, "client %d read", i)
			assert.True(t, bytes.Equal(payloads[i], got), "client %d: %d bytes sent, %d received, not equal", i, len(payloads[i]), len(got))
		}()
	}
	wg.Wait()

	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == clients }, "every session closes")
	assert.EqualValues(t, total, st.BytesIn)
	assert.EqualValues(t, total, st.BytesOut)
	assert.Zero(t, st.Reset)
	assert.Zero(t, st.NoBackend)
	assert.Zero(t, st.ConnectFailed)
	ws := e.status()
	assert.EqualValues(t, clients, ws.Accepted)
	assert.Zero(t, ws.Sessions)
	assert.Zero(t, ws.BuffersLent, "idle: no buffer lent")
	assert.EqualValues(t, clients, be.accepted.Load())
}

// 2. 64 MiB through one session: the proxy holds at most two buffers and
// the heap does not grow with the payload.
func TestLargeTransferFlatMemory(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse

	const size = 64 << 20
	const chunk = 256 << 10
	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s, buf := newStream(7), make([]byte, chunk)
		for sent := 0; sent < size; sent += chunk {
			s.fill(buf)
			if _, err := c.Write(buf); !assert.NoError(t, err, "write at %d", sent) {
				return
			}
		}
		assert.NoError(t, c.CloseWrite())
	}()

	stop := make(chan struct{})
	var maxLent, samples int
	var peakHeap uint64
	go func() {
		defer wg.Done()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			st, err := e.w.Status()
			if err != nil {
				return
			}
			samples++
			maxLent = max(maxLent, st.BuffersLent)
			if i%10 == 0 {
				runtime.ReadMemStats(&ms)
				peakHeap = max(peakHeap, ms.HeapInuse)
			}
		}
	}()

	s := newStream(7)
	want, got := make([]byte, chunk), make([]byte, chunk)
	ok := true
	for recv := 0; recv < size && ok; recv += chunk {
		s.fill(want)
		_, err := io.ReadFull(c, got)
		ok = assert.NoError(t, err, "read at %d", recv) && assert.True(t, bytes.Equal(want, got), "bytes differ in the chunk at %d", recv)
	}
	if ok {
		n, err := c.Read(got[:1])
		assert.Equal(t, io.EOF, err, "EOF after the payload (read %d more)", n)
	}
	close(stop)
	wg.Wait()

	assert.Greater(t, samples, 10, "Status was sampled during the transfer")
	assert.LessOrEqual(t, maxLent, 2, "one session lends at most one buffer per direction")
	runtime.GC()
	runtime.ReadMemStats(&ms)
	const slack = 16 << 20
	assert.Less(t, int64(ms.HeapInuse)-int64(before), int64(slack), "heap after %d MiB: before %d, after %d", size>>20, before, ms.HeapInuse)
	assert.Less(t, int64(peakHeap)-int64(before), int64(slack), "heap during %d MiB: before %d, peak %d", size>>20, before, peakHeap)

	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, size, st.BytesIn)
	assert.EqualValues(t, size, st.BytesOut)
	assert.Zero(t, e.status().BuffersLent)
}

// 3. Half-close each way: a FIN is passed on and the other direction
// keeps flowing.
func TestHalfClose(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		received := make(chan string, 1)
		be := e.server(func(c *net.TCPConn) {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			q, err := io.ReadAll(c) // up to the client's FIN
			if err != nil {
				received <- "error: " + err.Error()
				return
			}
			received <- string(q)
			// The backend has read EOF and can still send.
			if _, err := c.Write([]byte("answer to " + string(q))); err != nil {
				return
			}
			c.CloseWrite()
			c.Read(make([]byte, 1)) // until the proxy closes
		})
		e.addBackend("c", "a", be.addr)
		l, addr := e.listen(tcpproxy.Config{})

		c := e.dial(addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Write([]byte("question"))
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		select {
		case q := <-received:
			assert.Equal(t, "question", q, "the backend read the bytes, then EOF")
		case <-time.After(5 * time.Second):
			t.Fatal("the client's FIN did not reach the backend")
		}
		got, err := io.ReadAll(c)
		require.NoError(t, err, "the reply, then EOF")
		assert.Equal(t, "answer to question", string(got))
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session ends once both FINs are relayed")
		assert.Zero(t, st.Reset)
		assert.EqualValues(t, len("question"), st.BytesIn)
		assert.EqualValues(t, len("answer to question"), st.BytesOut)
	})

	t.Run("backend first", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		chunks := make(chan string, 16)
		be := e.server(func(c *net.TCPConn) {
			defer close(chunks)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("banner")); err != nil {
				return
			}
			c.CloseWrite()
			buf := make([]byte, 1024)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					chunks <- string(buf[:n])
				}
				if err != nil {
					if err == io.EOF {
						chunks <- "<EOF>"
					}
					return
				}
			}
		})
		e.addBackend("c", "a", be.addr)
		l, addr := e.listen(tcpproxy.Config{})

		c := e.dial(addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		require.NoError(t, err, "the banner, then EOF")
		assert.Equal(t, "banner", string(got))
		// The client goes on sending after the backend's FIN.
		for _, msg := range []string{"one", "two", "three"} {
			_, err := c.Write([]byte(msg))
			require.NoError(t, err)
			var recv string
			for recv != msg {
				select {
				case s := <-chunks:
					recv += s
					require.True(t, len(recv) <= len(msg), "got %q, want %q", recv, msg)
				case <-time.After(5 * time.Second):
					t.Fatalf("%q did not reach the backend after its FIN", msg)
				}
			}
		}
		require.NoError(t, c.CloseWrite())
		select {
		case s := <-chunks:
			assert.Equal(t, "<EOF>", s)
		case <-time.After(5 * time.Second):
			t.Fatal("the client's FIN did not reach the backend")
		}
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session ends once both FINs are relayed")
		assert.Zero(t, st.Reset)
		assert.EqualValues(t, len("onetwothree"), st.BytesIn)
		assert.EqualValues(t, len("banner"), st.BytesOut)
	})
}

// A backend that sends N bytes and closes: the client gets exactly those
// bytes, then EOF, and can still close its side cleanly.
func TestBackendSendsThenCloses(t *testing.T) {
	e := newEnv(t, session.Config{})
	data := randBytes(rand.New(rand.NewPCG(3, 4)), 1<<20+17)
	be := e.server(func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(data)
	}) // returns: the server closes the connection
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})

	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the bytes, then EOF")
	assert.True(t, bytes.Equal(data, got), "sent %d bytes, received %d", len(data), len(got))
	require.NoError(t, c.CloseWrite())
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session ends with the client's FIN")
	assert.EqualValues(t, len(data), st.BytesOut)
	assert.Zero(t, st.BytesIn)
	assert.Zero(t, st.Reset)
}

// roundTrip sends msg and expects it back.
func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
}

// 4. Refused backends: the next one is tried; when all are refused (or
// the attempts are used up, or the cluster is unknown) the client is
// closed.
func TestConnectRefused(t *testing.T) {
	e := newEnv(t, session.Config{})
	live := e.server(echo)

	t.Run("next backend", func(t *testing.T) {
		e.addBackend("c", "r1", refusedAddr(t))
		e.addBackend("c", "r2", refusedAddr(t))
		e.addBackend("c", "live", live.addr)
		l, addr := e.listen(tcpproxy.Config{}) // 3 attempts
		for i := range 8 {
			c := e.dial(addr)
			roundTrip(t, c, fmt.Sprintf("hello %d", i))
			c.Close()
		}
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 8 }, "all sessions close")
		assert.Zero(t, st.NoBackend)
		// r1 and r2 are tried (until they go down after 3 failures).
		assert.GreaterOrEqual(t, st.ConnectFailed, uint64(2))
		assert.Zero(t, st.ConnectTimedOut)
		assert.EqualValues(t, 8, live.accepted.Load())
		bs := e.requireNoActive("c")
		assert.Equal(t, st.ConnectFailed, bs["r1"].Counters.Failures+bs["r2"].Counters.Failures, "each failure reported to its backend")
		assert.EqualValues(t, 8, bs["live"].Counters.Connections)
	})

	t.Run("all refused", func(t *testing.T) {
		require.NoError(t, e.w.AddCluster("dead", backend.RoundRobin))
		e.addBackend("dead", "d1", refusedAddr(t))
		e.addBackend("dead", "d2", refusedAddr(t))
		l, addr := e.listen(tcpproxy.Config{Cluster: "dead"}) // 3 attempts, 2 backends
		for i := range 2 {
			c := e.dial(addr)
			requireClosed(t, c, 2*time.Second, "no backend accepts")
			st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == uint64(i+1) }, "the session closes")
			assert.EqualValues(t, i+1, st.NoBackend)
			assert.EqualValues(t, 2*(i+1), st.ConnectFailed, "each backend tried once per client")
		}
	})

	t.Run("one attempt", func(t *testing.T) {
		require.NoError(t, e.w.AddCluster("first", backend.RoundRobin))
		e.addBackend("first", "refused", refusedAddr(t)) // round robin picks it first
		e.addBackend("first", "live", live.addr)
		l, addr := e.listen(tcpproxy.Config{Cluster: "first", ConnectAttempts: 1})
		before := live.accepted.Load()
		c := e.dial(addr)
		requireClosed(t, c, 2*time.Second, "the only attempt was refused")
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.EqualValues(t, 1, st.NoBackend)
		assert.EqualValues(t, 1, st.ConnectFailed)
		assert.Equal(t, before, live.accepted.Load(), "no second attempt")
		// The next client gets the next backend.
		roundTrip(t, e.dial(addr), "second client")
	})

	t.Run("unknown cluster", func(t *testing.T) {
		l, addr := e.listen(tcpproxy.Config{Cluster: "nope"})
		requireClosed(t, e.dial(addr), 2*time.Second, "no such cluster")
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.EqualValues(t, 1, st.NoBackend)
		assert.Zero(t, st.ConnectFailed)
	})
}

// 5. A backend that never answers the SYN: the attempt times out.
func TestConnectTimeout(t *testing.T) {
	e := newEnv(t, session.Config{})
	bh, ok := newBlackhole(t)
	if !ok {
		t.Skip("this kernel completes handshakes beyond a full accept queue: no way to make a connect hang on loopback")
	}
	e.addBackend("c", "bh", bh.addr)
	l, addr := e.listen(tcpproxy.Config{ConnectTimeout: 200 * time.Millisecond, ConnectAttempts: 1})

	start := time.Now()
	c := e.dial(addr)
	requireClosed(t, c, 3*time.Second, "the connect timed out")
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
	assert.Less(t, elapsed, 2*time.Second)
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, 1, st.ConnectTimedOut)
	assert.EqualValues(t, 1, st.NoBackend)
	assert.Zero(t, st.ConnectFailed)
}

// 5b. A timed-out attempt moves on to the next backend.
func TestConnectTimeoutThenNextBackend(t *testing.T) {
	e := newEnv(t, session.Config{})
	bh, ok := newBlackhole(t)
	if !ok {
		t.Skip("this kernel completes handshakes beyond a full accept queue: no way to make a connect hang on loopback")
	}
	live := e.server(echo)
	e.addBackend("c", "bh", bh.addr) // picked first
	e.addBackend("c", "live", live.addr)
	l, addr := e.listen(tcpproxy.Config{ConnectTimeout: 150 * time.Millisecond})
	start := time.Now()
	c := e.dial(addr)
	roundTrip(t, c, "after a timeout")
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	c.Close()
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, 1, st.ConnectTimedOut)
	assert.Zero(t, st.NoBackend)
}

// 6. A backend that resets mid-stream: the client's connection ends and
// the reset is counted.
func TestBackendResetMidStream(t *testing.T) {
	e := newEnv(t, session.Config{})
	data := bytes.Repeat([]byte("x"), 1000)
	be := e.server(func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Wait for the client's first bytes: the pipe is up, so the reset
		// cannot be taken for a failed connect.
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			return
		}
		c.Write(data)
		c.SetLinger(0)
		c.Close() // RST
	})
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})

	c := e.dial(addr)
	_, err := c.Write([]byte("go"))
	require.NoError(t, err)
	got := requireClosed(t, c, 2*time.Second, "the backend reset")
	assert.True(t, bytes.HasPrefix(data, got), "what arrived is a prefix of what was sent")
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, 1, st.Reset)
	assert.Zero(t, st.ConnectFailed)
}

// 7. Inactivity timeouts on each side.
func TestTimeouts(t *testing.T) {
	for _, side := range []struct {
		name     string
		cfg      tcpproxy.Config
		fired    func(tcpproxy.StatsSnapshot) uint64
		notFired func(tcpproxy.StatsSnapshot) uint64
	}{
		{"front", tcpproxy.Config{FrontTimeout: 200 * time.Millisecond, BackTimeout: 5 * time.Second},
			func(s tcpproxy.StatsSnapshot) uint64 { return s.FrontTimeouts }, func(s tcpproxy.StatsSnapshot) uint64 { return s.BackTimeouts }},
		{"back", tcpproxy.Config{FrontTimeout: 5 * time.Second, BackTimeout: 200 * time.Millisecond},
			func(s tcpproxy.StatsSnapshot) uint64 { return s.BackTimeouts }, func(s tcpproxy.StatsSnapshot) uint64 { return s.FrontTimeouts }},
	} {
		t.Run(side.name, func(t *testing.T) {
			e := newEnv(t, session.Config{})
			be := e.server(silent)
			e.addBackend("c", "a", be.addr)
			l, addr := e.listen(side.cfg)
			start := time.Now()
			c := e.dial(addr)
			requireClosed(t, c, 3*time.Second, "the "+side.name+" timeout closes the session")
			elapsed := time.Since(start)
			assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
			assert.Less(t, elapsed, 2*time.Second)
			st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
			assert.EqualValues(t, 1, side.fired(st))
			assert.Zero(t, side.notFired(st))
		})
	}
	t.Run("activity resets both timers", func(t *testing.T) {
		e := newEnv(t, session.Config{})
		be := e.server(echo)
		e.addBackend("c", "a", be.addr)
		const timeout = 300 * time.Millisecond
		l, addr := e.listen(tcpproxy.Config{FrontTimeout: timeout, BackTimeout: timeout})
		c := e.dial(addr)
		start := time.Now()
		last := start
		for i := range 10 { // 10 × 60 ms: well past either timeout
			msg := fmt.Sprintf("tick %d", i)
			c.SetDeadline(time.Now().Add(3 * time.Second))
			_, err := c.Write([]byte(msg))
			if err == nil {
				_, err = io.ReadFull(c, make([]byte, len(msg)))
			}
			if err != nil && time.Since(last) > timeout {
				t.Skipf("the machine is too slow for this test: %v between two exchanges, the timeout is %v", time.Since(last), timeout)
			}
			require.NoError(t, err, "round trip %d", i)
			last = time.Now()
			time.Sleep(60 * time.Millisecond) // pacing: the point is the gaps
		}
		require.Greater(t, time.Since(start), 500*time.Millisecond)
		assert.Zero(t, l.Stats().Sessions, "still open")
		requireClosed(t, c, 3*time.Second, "then silence times out")
		st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
		assert.EqualValues(t, 1, st.FrontTimeouts+st.BackTimeouts)
	})
}

// 8. Soft stop: no new connection, the transfer under way completes.
func TestSoftStopLetsTransferFinish(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{})

	const size = 16 << 20
	const chunk = 64 << 10
	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	resume := make(chan struct{})
	werr, rerr := make(chan error, 1), make(chan error, 1)
	go func() {
		s, buf := newStream(3), make([]byte, chunk)
		for sent := 0; sent < size; sent += chunk {
			if sent == 2<<20 {
				<-resume // hold the transfer until the soft stop is under way
			}
			s.fill(buf)
			if _, err := c.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.CloseWrite()
	}()
	var received atomic.Int64
	go func() {
		s := newStream(3)
		want, got := make([]byte, chunk), make([]byte, chunk)
		for recv := 0; recv < size; recv += chunk {
			s.fill(want)
			if _, err := io.ReadFull(c, got); err != nil {
				rerr <- fmt.Errorf("read at %d: %w", recv, err)
				return
			}
			if !bytes.Equal(want, got) {
				rerr <- fmt.Errorf("bytes differ in the chunk at %d", recv)
				return
			}
			received.Add(chunk)
		}
		if n, err := c.Read(got[:1]); err != io.EOF {
			rerr <- fmt.Errorf("want EOF after the payload, got %d bytes, %v", n, err)
			return
		}
		rerr <- nil
	}()
	for deadline := time.Now().Add(5 * time.Second); received.Load() < 1<<20; {
		require.True(t, time.Now().Before(deadline), "the transfer does not start")
		time.Sleep(time.Millisecond)
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- e.w.SoftStop(ctx)
	}()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 3*time.Second, 5*time.Millisecond, "new connections are refused")
	st, err := e.w.Status()
	require.NoError(t, err, "the worker still runs for the transfer")
	assert.True(t, st.ShuttingDown)
	select {
	case err := <-stopped:
		t.Fatalf("soft stop returned (%v) in the middle of a transfer", err)
	default:
	}

	close(resume)
	require.NoError(t, <-werr)
	require.NoError(t, <-rerr, "the transfer completed intact")
	c.Close()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("soft stop did not finish")
	}
	ls := l.Stats()
	assert.EqualValues(t, size, ls.BytesIn)
	assert.EqualValues(t, size, ls.BytesOut)
	assert.Zero(t, ls.Reset)
}

// 8b. Soft stop closes a session that has not reached its backend yet.
func TestSoftStopClosesUnconnectedSession(t *testing.T) {
	e := newEnv(t, session.Config{})
	bh, ok := newBlackhole(t)
	if !ok {
		t.Skip("this kernel completes handshakes beyond a full accept queue: no way to make a connect hang on loopback")
	}
	e.addBackend("c", "bh", bh.addr)
	_, addr := e.listen(tcpproxy.Config{ConnectTimeout: 10 * time.Second})
	c := e.dial(addr)
	require.Eventually(t, func() bool { st, err := e.w.Status(); return err == nil && st.Sessions == 1 }, 3*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.w.SoftStop(ctx))
	assert.Less(t, time.Since(start), time.Second, "a connecting session is not waited for")
	requireClosed(t, c, 2*time.Second, "closed by the soft stop")
}

// 9. Hard stop closes established sessions at once.
func TestHardStopClosesAtOnce(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})

	idle := e.dial(addr)
	roundTrip(t, idle, "idle")
	busy := e.dial(addr)
	roundTrip(t, busy, "busy")
	werr := make(chan error, 1)
	go func() { // keeps writing until the connection breaks
		buf := make([]byte, 32<<10)
		busy.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := busy.Write(buf); err != nil {
				werr <- err
				return
			}
		}
	}()
	require.Eventually(t, func() bool {
		st, err := e.w.Status()
		return err == nil && st.Sessions == 2 && (st.BuffersLent > 0 || st.PipesLent > 0)
	}, 3*time.Second, time.Millisecond, "both sessions up, one moving bytes")

	start := time.Now()
	require.NoError(t, e.w.HardStop())
	requireClosed(t, idle, 2*time.Second, "idle session")
	requireClosed(t, busy, 2*time.Second, "busy session")
	assert.Less(t, time.Since(start), time.Second)
	select {
	case err := <-werr:
		assert.True(t, isClosed(err), "the writer sees the connection end: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("the writer was not stopped")
	}
	st, err := e.w.Status()
	require.NoError(t, err, "the final counters")
	assert.Zero(t, st.Sessions)
}

// taggedEcho is an echo backend that first reads a 16-byte tag, records
// it, and echoes it.
type taggedEcho struct {
	*server
	mu   sync.Mutex
	tags map[string]bool
}

func (e *env) taggedEcho() *taggedEcho {
	te := &taggedEcho{tags: map[string]bool{}}
	te.server = e.server(func(c *net.TCPConn) {
		tag := make([]byte, 16)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, tag); err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		te.mu.Lock()
		te.tags[string(tag)] = true
		te.mu.Unlock()
		if _, err := c.Write(tag); err != nil {
			return
		}
		echo(c)
	})
	return te
}

func (te *taggedEcho) has(tag string) bool {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.tags[tag]
}

// 10. Backends added and removed under load: no established session is
// hurt and a removed backend gets no new connection.
func TestBackendChangesUnderLoad(t *testing.T) {
	e := newEnv(t, session.Config{})
	srvA, srvB := e.taggedEcho(), e.taggedEcho()
	e.addBackend("c", "a", srvA.addr)
	l, addr := e.listen(tcpproxy.Config{})

	// phase: 1 before a is removed, 2 while it is out, 3 once it is back
	// under a new ID.
	var phase atomic.Int32
	phase.Store(1)
	var rounds, errs atomic.Int64
	var mu sync.Mutex
	var window []string // connections made and finished entirely in phase 2
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// converse runs one connection: the tag, then ping-pong rounds (until
	// stop when rounds is 0).
	converse := func(rng *rand.Rand, tag string, n int) bool {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if !assert.NoError(t, err) {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, 1024)
		if _, err := c.Write([]byte(tag)); !assert.NoError(t, err, tag) {
			return false
		}
		if _, err := io.ReadFull(c, got[:16]); !assert.NoError(t, err, tag) || !assert.Equal(t, tag, string(got[:16])) {
			return false
		}
		msg := make([]byte, 1024)
		for i := 0; n == 0 || i < n; i++ {
			if n == 0 {
				select {
				case <-stop:
					return true
				default:
				}
			}
			for j := range msg {
				msg[j] = byte(rng.Uint32())
			}
			if _, err := c.Write(msg); !assert.NoError(t, err, "%s round %d", tag, i) {
				return false
			}
			if _, err := io.ReadFull(c, got); !assert.NoError(t, err, "%s round %d", tag, i) {
				return false
			}
			if !assert.True(t, bytes.Equal(msg, got), "%s round %d: echo differs", tag, i) {
				return false
			}
			rounds.Add(1)
		}
		return true
	}
	// Ten long-lived sessions, all established on a before any change.
	for i := range 10 {
		tag := fmt.Sprintf("long-%02d-00000000", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !converse(rand.New(rand.NewPCG(uint64(i), 1)), tag, 0) {
				errs.Add(1)
			}
		}()
	}
	// Ten clients that reconnect every 20 rounds.
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := phase.Load()
				tag := fmt.Sprintf("p%d-%02d-%010d", p, i, n) // 16 bytes
				if !converse(rng, tag, 20) {
					errs.Add(1)
					return
				}
				if p == 2 && phase.Load() == 2 {
					mu.Lock()
					window = append(window, tag)
					mu.Unlock()
				}
			}
		}()
	}

	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer halt() // also when a require below fails

	// pace lets the load run for at least d, until it has made progress
	// and cond holds (bounded, for slow machines).
	pace := func(d time.Duration, what string, cond func() bool) {
		start, r := time.Now(), rounds.Load()
		for deadline := start.Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if time.Since(start) >= d && rounds.Load() > r && cond() {
				return
			}
			require.True(t, time.Now().Before(deadline), "the load makes no progress: %s", what)
		}
	}
	always := func() bool { return true }
	pace(100*time.Millisecond, "all long sessions on a", func() bool {
		for i := range 10 {
			if !srvA.has(fmt.Sprintf("long-%02d-00000000", i)) {
				return false
			}
		}
		return true
	})
	e.addBackend("c", "b", srvB.addr)
	pace(200*time.Millisecond, "with a and b", always)
	require.NoError(t, e.w.RemoveBackend("c", "a"))
	phase.Store(2)
	pace(300*time.Millisecond, "connections while a is out", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(window) >= 10
	})
	phase.Store(3)
	e.addBackend("c", "a2", srvA.addr)
	pace(200*time.Millisecond, "with a2 and b", always)
	halt()

	assert.Zero(t, errs.Load(), "every round trip succeeded")
	t.Logf("%d round trips; %d connections made while a was out", rounds.Load(), len(window))
	require.NotEmpty(t, window, "connections were made while a was out")
	for _, tag := range window {
		assert.False(t, srvA.has(tag), "%s reached the removed backend", tag)
		assert.True(t, srvB.has(tag), "%s did not reach b", tag)
	}
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return e.status().Sessions == 0 }, "every session closes")
	assert.Zero(t, st.Reset)
	assert.Zero(t, st.NoBackend)
	assert.Zero(t, st.ConnectFailed)
}
