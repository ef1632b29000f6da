package tcpproxy_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
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

// backendState is what the loop knows of one backend.
type backendState struct {
	Active   int
	Status   backend.Status
	Counters backend.Counters
}

// backends reads the state of a cluster's backends on the loop.
func (e *env) backends(cluster string) map[string]backendState {
	e.t.Helper()
	out := map[string]backendState{}
	require.NoError(e.t, e.w.Exec(func(lp *session.Loop) error {
		c := lp.Clusters().Cluster(cluster)
		if c == nil {
			return nil
		}
		for _, b := range c.Backends() {
			out[b.ID] = backendState{Active: b.Active(), Status: b.Status(), Counters: b.Counters()}
		}
		return nil
	}))
	return out
}

// requireNoActive checks that every connect was reported back to the
// backend: no connection is counted against any backend of cluster once
// its sessions have closed, and every attempt ended in one outcome.
func (e *env) requireNoActive(cluster string) map[string]backendState {
	e.t.Helper()
	bs := e.backends(cluster)
	for id, b := range bs {
		assert.Zero(e.t, b.Active, "backend %s of %s: connections still counted", id, cluster)
	}
	return bs
}

// Every connect outcome is reported to the backend exactly once.
func TestBackendAccounting(t *testing.T) {
	e := newEnv(t, session.Config{})
	live := e.server(echo)
	e.addBackend("c", "r", refusedAddr(t))
	e.addBackend("c", "live", live.addr)
	l, addr := e.listen(tcpproxy.Config{})
	for range 5 {
		c := e.dial(addr)
		roundTrip(t, c, "x")
		c.Close()
	}
	waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 5 }, "the closed clients' sessions end")
	// One session left open, counted while it lasts.
	open := e.dial(addr)
	roundTrip(t, open, "y")
	bs := e.backends("c")
	assert.Equal(t, 1, bs["live"].Active)
	open.Close()
	waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 6 }, "all sessions close")
	bs = e.requireNoActive("c")
	assert.EqualValues(t, 6, bs["live"].Counters.Connections)
	assert.Zero(t, bs["live"].Counters.Failures)
	assert.Equal(t, bs["r"].Counters.Connections, bs["r"].Counters.Failures, "every attempt on the refused backend failed")
	assert.EqualValues(t, bs["r"].Counters.Failures, l.Stats().ConnectFailed)
	assert.Equal(t, backend.Down, bs["r"].Status, "three refusals take it down")
	assert.Equal(t, backend.Up, bs["live"].Status)
}

// A connect abandoned by a timeout, a closed client or a soft stop is
// given back too.
func TestBackendAccountingAbandonedConnects(t *testing.T) {
	e := newEnv(t, session.Config{})
	bh, ok := newBlackhole(t)
	if !ok {
		t.Skip("this kernel completes handshakes beyond a full accept queue: no way to make a connect hang on loopback")
	}
	e.addBackend("c", "bh", bh.addr)
	l, addr := e.listen(tcpproxy.Config{ConnectTimeout: 100 * time.Millisecond, ConnectAttempts: 1})
	requireClosed(t, e.dial(addr), 2*time.Second, "connect timeout")
	// A front timeout while connecting.
	l2, addr2 := e.listen(tcpproxy.Config{ConnectTimeout: 5 * time.Second, FrontTimeout: 100 * time.Millisecond})
	requireClosed(t, e.dial(addr2), 2*time.Second, "front timeout while connecting")
	waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "closed")
	st2 := waitStats(t, l2, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "closed")
	assert.EqualValues(t, 1, st2.FrontTimeouts)
	bs := e.requireNoActive("c")
	assert.EqualValues(t, 2, bs["bh"].Counters.Connections)
	assert.EqualValues(t, 1, bs["bh"].Counters.Failures, "the timed-out attempt failed; the abandoned one was released")
}

// When the buffer pool runs dry a session waits and retries; it goes on
// once buffers come back.
func TestPoolExhaustionRecovers(t *testing.T) {
	// Splicing off: the hog must hold buffers, not kernel pipes.
	e := newEnv(t, session.Config{Buffers: protocol.PoolConfig{Max: 2}, Pipes: protocol.PipePoolConfig{Max: -1}})
	// A hog: a backend and a client that both send and never read, so
	// that its session holds one buffer per direction.
	flood := func(c *net.TCPConn) {
		buf := make([]byte, 64<<10)
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	hog := e.server(flood)
	require.NoError(t, e.w.AddCluster("hog", backend.RoundRobin))
	e.addBackend("hog", "h", hog.addr)
	hl, haddr := e.listen(tcpproxy.Config{Cluster: "hog"})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	l, addr := e.listen(tcpproxy.Config{FrontTimeout: 300 * time.Millisecond})

	h := e.dial(haddr)
	hdone := make(chan struct{})
	go func() { defer close(hdone); flood(h) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		st := e.status()
		if st.BuffersLent == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the hog does not hold the whole pool: %+v, %+v", st, hl.Stats())
	}

	c := e.dial(addr)
	const msg = "waiting for a buffer"
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	require.Eventually(t, func() bool { st, err := e.w.Status(); return err == nil && st.BuffersRefused > 0 }, 3*time.Second, time.Millisecond, "the session was refused a buffer")
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing moves while the pool is dry")

	start := time.Now()
	require.NoError(t, h.Close()) // unread data: a reset, the hog's session fails
	<-hdone
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, msg, string(got))
	assert.Less(t, time.Since(start), time.Second, "retried shortly after buffers came back")
	waitStats(t, hl, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 && s.Reset == 1 }, "the hog's session failed")
	// The retry timer doubled as the front timer: the idle timeout still
	// works once the session is served.
	requireClosed(t, c, 3*time.Second, "the front timeout after the wait for a buffer")
	st := waitStats(t, l, func(s tcpproxy.StatsSnapshot) bool { return s.Sessions == 1 }, "the session closes")
	assert.EqualValues(t, 1, st.FrontTimeouts)
	assert.Zero(t, e.status().BuffersLent)
}

// 12. PrintSession, reached through the zombie check's log line, in each
// state a session can linger in.
func TestZombieCheckPrintsSessions(t *testing.T) {
	var logs logBuffer
	e := newEnv(t, session.Config{ZombieCheckInterval: 250 * time.Millisecond, Logger: logs.logger()})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	_, paddr := e.listen(tcpproxy.Config{ExpectProxy: true})

	piped := e.dial(addr)
	roundTrip(t, piped, "hi")
	waiting := e.dial(paddr)
	zombies := uint64(2)

	bh, ok := newBlackhole(t)
	var connecting *net.TCPConn
	if ok {
		require.NoError(t, e.w.AddCluster("bh", backend.RoundRobin))
		e.addBackend("bh", "bh", bh.addr)
		_, baddr := e.listen(tcpproxy.Config{Cluster: "bh", ConnectTimeout: 10 * time.Second})
		connecting = e.dial(baddr)
		zombies++
	}

	requireClosed(t, piped, 2*time.Second, "a silent piped session is a zombie")
	requireClosed(t, waiting, 2*time.Second, "a silent client owing a header is a zombie")
	if connecting != nil {
		requireClosed(t, connecting, 2*time.Second, "a session stuck connecting is a zombie")
	}
	require.Eventually(t, func() bool { st, err := e.w.Status(); return err == nil && st.Zombies >= zombies }, 3*time.Second, time.Millisecond)

	log := logs.String()
	assert.Contains(t, log, "closing zombie session")
	assert.Regexp(t, regexp.MustCompile(`tcp session 127\.0\.0\.1:\d+ -> c: state pipe, backend `+regexp.QuoteMeta(be.addr.String())+`, in 2 out 2, buffered false`), log)
	assert.Regexp(t, regexp.MustCompile(`tcp session 127\.0\.0\.1:\d+ -> c: state expect-proxy`), log)
	if connecting != nil {
		assert.Contains(t, log, "-> bh: state connecting, backend "+bh.addr.String())
	} else {
		t.Log("the connecting state was not checked: no way to make a connect hang on this kernel")
	}
	e.requireNoActive("c")
	e.requireNoActive("bh")
}

// The session's own methods, called on the loop the way the worker calls
// them, on a session that has not started connecting.
func TestSessionMethods(t *testing.T) {
	e := newEnv(t, session.Config{MaxConnections: 10})
	l, local := e.listen(tcpproxy.Config{})
	assert.Equal(t, session.TCP, l.Protocol())

	peer := netip.MustParseAddrPort("192.0.2.1:1234")
	const tok = 1000 // beyond the worker's slab: no session owns it
	var (
		proto     session.Protocol
		front     uint32
		cluster   string
		routed    bool
		sessAddr  netip.AddrPort
		last      time.Time
		dump      bytes.Buffer
		shutdown  session.Result
		otherTick session.Result
	)
	require.NoError(t, e.w.Exec(func(lp *session.Loop) error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		unix.SetNonblock(fd, true)
		s, err := l.NewSession(lp, session.Accepted{Fd: fd, Token: tok, Peer: peer, Local: local})
		if err != nil {
			unix.Close(fd)
			return err
		}
		proto = s.Protocol()
		front = uint32(s.FrontendToken())
		cluster, routed = s.ClusterID()
		sessAddr, _ = s.SessionAddress()
		last = s.LastEvent()
		s.PrintSession(&dump)
		otherTick = s.Timeout(tok+1, 0) // not one of its tokens
		shutdown = s.ShuttingDown()
		s.Close()
		s.Close() // twice is harmless
		return nil
	}))
	assert.Equal(t, session.TCP, proto)
	assert.Equal(t, "TCP", proto.String())
	assert.EqualValues(t, tok, front)
	assert.True(t, routed)
	assert.Equal(t, "c", cluster)
	assert.Equal(t, peer, sessAddr)
	assert.False(t, last.IsZero())
	assert.Equal(t, "tcp session 192.0.2.1:1234 -> c: state connect", dump.String())
	assert.Equal(t, session.Continue, otherTick)
	assert.Equal(t, session.Close, shutdown, "a session not connected yet ends at a soft stop")
	assert.EqualValues(t, 1, l.Stats().Sessions, "closed once")
}

// A relayed connection is one request to its backend, and every byte
// that crossed the backend connection is counted, while it is open and
// after.
func TestBackendCountersCountTheRelay(t *testing.T) {
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("z"), 10000)
	_, err := c.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	open := e.backends("c")["a"].Counters
	assert.EqualValues(t, 1, open.Requests)
	assert.EqualValues(t, 10000, open.BytesIn, "counted while the connection lasts")
	assert.EqualValues(t, 10000, open.BytesOut)
	c.Close()
	require.Eventually(t, func() bool { return e.status().Sessions == 0 }, 5*time.Second, time.Millisecond)
	done := e.backends("c")["a"].Counters
	assert.EqualValues(t, 1, done.Connections)
	assert.EqualValues(t, 10000, done.BytesIn)
	assert.EqualValues(t, 10000, done.BytesOut)
}

// TestRelayRoundDoesNotAllocate fails when a steady-state round through
// a TCP relay (bytes to the backend and back) allocates. The client and
// the echo backend allocate nothing per round.
func TestRelayRoundDoesNotAllocate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a normal build")
	}
	e := newEnv(t, session.Config{})
	be := e.server(echo)
	e.addBackend("c", "a", be.addr)
	_, addr := e.listen(tcpproxy.Config{})
	c := e.dial(addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, got := bytes.Repeat([]byte("r"), 512), make([]byte, 512)
	round := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		round()
	}
	assert.Less(t, testing.AllocsPerRun(2000, round), 0.5, "allocations per relay round")
	c.Close()
}
