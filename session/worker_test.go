package session_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/session"
)

// tester runs one worker with a line listener for a test and checks at
// the end that the worker, its sessions and their descriptors are gone.
type tester struct {
	t    *testing.T
	w    *session.Worker
	addr netip.AddrPort
	runc chan error
}

func newTester(t *testing.T, cfg session.Config, l session.Listener) *tester {
	t.Helper()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	w, err := session.NewWorker(cfg)
	require.NoError(t, err)
	tt := &tester{t: t, w: w, runc: make(chan error, 1)}
	go func() { tt.runc <- w.Run() }()
	tt.addr, err = w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	require.NoError(t, err)
	t.Cleanup(func() {
		w.HardStop()
		require.NoError(t, <-tt.runc)
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
	return tt
}

func openFDs(t *testing.T) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func (tt *tester) dial() *client {
	tt.t.Helper()
	c, err := net.Dial("tcp", tt.addr.String())
	require.NoError(tt.t, err)
	tt.t.Cleanup(func() { c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// ask sends a line and returns the answer.
func (c *client) ask(t *testing.T, line string) string {
	t.Helper()
	_, err := io.WriteString(c, line+"\n")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := c.r.ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSuffix(got, "\n")
}

// closedByServer reports whether the server closed the connection.
func (c *client) closedByServer(t *testing.T) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadByte()
	return err == io.EOF || (err != nil && strings.Contains(err.Error(), "reset"))
}

func (tt *tester) status() session.Status {
	st, err := tt.w.Status()
	require.NoError(tt.t, err)
	return st
}

func TestSessionsAnswerConcurrently(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tt.dial()
			for j := 0; j < 10; j++ {
				assert.Equal(t, "PING", c.ask(t, "ping"))
			}
		}()
	}
	wg.Wait()
	st := tt.status()
	assert.EqualValues(t, 20, st.Accepted)
	assert.Equal(t, 1, st.Listeners)
}

func TestPanickingSessionDoesNotHurtOthers(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	good := tt.dial()
	assert.Equal(t, "BEFORE", good.ask(t, "before"))
	bad := tt.dial()
	_, err := io.WriteString(bad, "panic\n")
	require.NoError(t, err)
	assert.True(t, bad.closedByServer(t), "the panicking session is closed")
	assert.Equal(t, "AFTER", good.ask(t, "after"))
	st := tt.status()
	assert.EqualValues(t, 1, st.Panics)
	assert.Equal(t, 1, st.Sessions)
}

func TestMaxConnectionsPausesAndResumes(t *testing.T) {
	tt := newTester(t, session.Config{MaxConnections: 3}, lineListener{})
	var cs []*client
	for i := 0; i < 3; i++ {
		c := tt.dial()
		assert.Equal(t, "X", c.ask(t, "x"))
		cs = append(cs, c)
	}
	assert.True(t, tt.status().AcceptPaused)
	// The fourth waits in the kernel's backlog: connected, not served.
	waiting := tt.dial()
	_, err := io.WriteString(waiting, "queued\n")
	require.NoError(t, err)
	waiting.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = waiting.r.ReadByte()
	require.Error(t, err, "not served while the worker is at its limit")
	assert.Equal(t, 3, tt.status().Sessions)

	// Below 90 % of the limit (here: 2 of 3 would not be; 1 of 3 is)
	// accepting resumes and the backlog is served.
	cs[0].Close()
	cs[1].Close()
	waiting.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := waiting.r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "QUEUED\n", got)
	assert.False(t, tt.status().AcceptPaused)
}

func TestPerIPLimit(t *testing.T) {
	tt := newTester(t, session.Config{MaxConnectionsPerIP: 2}, lineListener{})
	a, b := tt.dial(), tt.dial()
	assert.Equal(t, "A", a.ask(t, "a"))
	assert.Equal(t, "B", b.ask(t, "b"))
	c := tt.dial()
	assert.True(t, c.closedByServer(t), "a third connection from 127.0.0.1 is refused")
	assert.EqualValues(t, 1, tt.status().RefusedPerIP)
	a.Close()
	require.Eventually(t, func() bool { return tt.status().Sessions == 1 }, 5*time.Second, time.Millisecond)
	d := tt.dial()
	assert.Equal(t, "D", d.ask(t, "d"), "a slot freed by a close is usable again")
}

func TestZombieCheckClosesSilentSessions(t *testing.T) {
	tt := newTester(t, session.Config{ZombieCheckInterval: 100 * time.Millisecond}, lineListener{})
	c := tt.dial()
	assert.Equal(t, "HI", c.ask(t, "hi"))
	assert.True(t, c.closedByServer(t))
	assert.GreaterOrEqual(t, tt.status().Zombies, uint64(1))
}

func TestIdleTimeoutFromSessionTimer(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{idle: 100 * time.Millisecond})
	// Before the dial: the server may accept (and start the timer) before
	// the client's Dial returns to it.
	start := time.Now()
	c := tt.dial()
	assert.True(t, c.closedByServer(t))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
}

func TestRemoveListenerKeepsSessions(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	c := tt.dial()
	assert.Equal(t, "ONE", c.ask(t, "one"))
	require.NoError(t, tt.w.RemoveListener(tt.addr))
	assert.ErrorIs(t, tt.w.RemoveListener(tt.addr), session.ErrNoSuchListener)
	_, err := net.DialTimeout("tcp", tt.addr.String(), time.Second)
	assert.Error(t, err, "nobody listens any more")
	assert.Equal(t, "TWO", c.ask(t, "two"), "the established session goes on")
}

func TestDeactivateAndActivateListener(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	require.NoError(t, tt.w.DeactivateListener(tt.addr))
	c := tt.dial() // waits in the backlog
	_, err := io.WriteString(c, "later\n")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.r.ReadByte()
	require.Error(t, err)
	require.NoError(t, tt.w.ActivateListener(tt.addr))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := c.r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "LATER\n", got)
}

func TestSoftStopLetsExchangesFinish(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	idle := tt.dial()
	assert.Equal(t, "IDLE", idle.ask(t, "idle"))
	busy := tt.dial()
	_, err := io.WriteString(busy, "half a li") // a line in flight
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tt.status().Sessions == 2 }, 5*time.Second, time.Millisecond)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- tt.w.SoftStop(ctx)
	}()
	assert.True(t, idle.closedByServer(t), "an idle session ends at once")
	require.Eventually(t, func() bool {
		_, err := net.DialTimeout("tcp", tt.addr.String(), 100*time.Millisecond)
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "new connections are refused")
	select {
	case <-stopped:
		t.Fatal("soft stop returned while a line was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	_, err = io.WriteString(busy, "ne\n")
	require.NoError(t, err)
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := busy.r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HALF A LINE\n", got, "the in-flight exchange completed")
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("soft stop did not finish")
	}
}

// The counters stay readable after a stop: the last word on what the
// worker did.
func TestStatusAfterStop(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	c := tt.dial()
	assert.Equal(t, "X", c.ask(t, "x"))
	require.NoError(t, tt.w.HardStop())
	st, err := tt.w.Status()
	require.NoError(t, err)
	assert.EqualValues(t, 1, st.Accepted)
	assert.EqualValues(t, 1, st.Closed)
	assert.Zero(t, st.Sessions)
}

func TestHardStopClosesAtOnce(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	c := tt.dial()
	_, err := io.WriteString(c, "unfinished")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tt.status().Sessions == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, tt.w.HardStop())
	assert.True(t, c.closedByServer(t))
	st, err := tt.w.Status()
	require.NoError(t, err, "the final counters stay readable")
	assert.EqualValues(t, 1, st.Closed, "the unfinished session was closed")
	assert.ErrorIs(t, tt.w.AddCluster("late", backend.RoundRobin), session.ErrStopped, "other commands say the worker stopped")
}

func TestProtocolAndResultNames(t *testing.T) {
	assert.Equal(t, "HTTPS", session.HTTPS.String())
	assert.Equal(t, "redis", session.Protocol("redis").String())
	assert.Equal(t, "again", session.Again.String())
	assert.Equal(t, "Result(42)", session.Result(42).String())
	b := session.Base{Token: 7, Peer: netip.MustParseAddrPort("10.0.0.1:5")}
	assert.Equal(t, eventloop.Token(7), b.FrontendToken())
	a, ok := b.SessionAddress()
	assert.True(t, ok)
	assert.Equal(t, b.Peer, a)
	b.Source = netip.MustParseAddrPort("192.0.2.7:9")
	a, _ = b.SessionAddress()
	assert.Equal(t, b.Source, a, "a PROXY-protocol source wins")
	_, ok = b.ClusterID()
	assert.False(t, ok)
}

// deferrer asks to be driven again at the end of each batch until it
// has run n times.
type deferrer struct {
	session.Base
	lp   *session.Loop
	runs atomic.Int32 // read by the test without posting to the loop, which would wake it
	n    int32
}

func (d *deferrer) Protocol() session.Protocol                       { return "deferrer" }
func (d *deferrer) UpdateReadiness(eventloop.Token, eventloop.Ready) {}
func (d *deferrer) Close()                                           {}
func (d *deferrer) Timeout(eventloop.Token, eventloop.TimerName) session.Result {
	return session.Continue
}
func (d *deferrer) ShuttingDown() session.Result { return session.Close }
func (d *deferrer) Ready(self session.ProxySession) session.Result {
	if d.runs.Add(1) < d.n {
		d.lp.Defer(d.Token, self)
	}
	return session.Continue
}

// A session that keeps deferring itself is driven every time, also past
// the rounds one batch allows: the worker does not sleep with work left.
func TestDeferChainsPastOneBatch(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	d := &deferrer{n: 50}
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		tok, err := lp.Register(-1, d)
		d.lp, d.Token = lp, tok
		lp.Defer(tok, d)
		return err
	}))
	require.Eventually(t, func() bool { return d.runs.Load() == d.n }, 2*time.Second, time.Millisecond)
}

// The ownership check catches a loop-only call made off the loop, and
// says which.
func TestLoopOnlyCallOffTheLoopPanics(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	var lp *session.Loop
	require.NoError(t, tt.w.Exec(func(l *session.Loop) error {
		lp = l
		lp.Now() // fine on the loop
		return nil
	}))
	for name, call := range map[string]func(){
		"Timers":   func() { lp.Timers() },
		"Register": func() { lp.Register(-1, &deferrer{}) },
		"Now":      func() { lp.Now() },
	} {
		v := func() (v any) {
			defer func() { v = recover() }()
			call()
			return nil
		}()
		require.NotNil(t, v, "%s off the loop must panic", name)
		assert.Contains(t, v, "Loop."+name+" called off the worker's loop")
	}
	// What is safe anywhere stays safe.
	assert.NotPanics(t, func() { lp.Logger() })
	assert.NoError(t, lp.Post(func() {}))
}

// timerOwner records which of its token's timers fired.
type timerOwner struct {
	fired chan eventloop.TimerName
}

func (o *timerOwner) Event(eventloop.Token, eventloop.Ready) {}
func (o *timerOwner) Timeout(_ eventloop.Token, name eventloop.TimerName) {
	o.fired <- name
}
func (o *timerOwner) Close() {}

// One token keeps several named timers; each fires under its own name,
// and cancelling one leaves the others.
func TestNamedTimersOnOneToken(t *testing.T) {
	tt := newTester(t, session.Config{}, lineListener{})
	o := &timerOwner{fired: make(chan eventloop.TimerName, 4)}
	var tok eventloop.Token
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		var err error
		if tok, err = lp.RegisterOwner(-1, o); err != nil {
			return err
		}
		lp.Schedule(tok, 2, 40*time.Millisecond) // idle
		retry := lp.Schedule(tok, 1, 5*time.Millisecond)
		lp.Schedule(tok, 3, 20*time.Millisecond) // connect
		lp.Schedule(tok, 4, time.Millisecond)
		assert.True(t, lp.Timers().Cancel(retry))
		return nil
	}))
	var got []eventloop.TimerName
	for len(got) < 3 {
		select {
		case n := <-o.fired:
			got = append(got, n)
		case <-time.After(5 * time.Second):
			t.Fatalf("timers fired: %v", got)
		}
	}
	assert.Equal(t, []eventloop.TimerName{4, 3, 2}, got, "in deadline order, the cancelled one never")
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error { lp.Release(tok, -1); return nil }))
}

// holder keeps idle tokens, as a pool of backend connections does.
type holder struct{ tokens []eventloop.Token }

func (h *holder) Event(eventloop.Token, eventloop.Ready)       {}
func (h *holder) Timeout(eventloop.Token, eventloop.TimerName) {}
func (h *holder) Close()                                       {}

// fill takes every free token of the worker's slab.
func (h *holder) fill(t *testing.T, w *session.Worker) {
	require.NoError(t, w.Exec(func(lp *session.Loop) error {
		for {
			tok, err := lp.RegisterOwner(-1, h)
			if err != nil {
				return nil
			}
			h.tokens = append(h.tokens, tok)
		}
	}))
}

// give releases n of its tokens (on the loop).
func (h *holder) give(lp *session.Loop, n int) {
	for ; n > 0 && len(h.tokens) > 0; n-- {
		lp.Release(h.tokens[len(h.tokens)-1], -1)
		h.tokens = h.tokens[:len(h.tokens)-1]
	}
}

// When other holders have every token, a new client waits in the
// backlog (it is not accepted and reset), and is served once tokens are
// free again.
func TestNoTokenLeavesClientsInTheBacklog(t *testing.T) {
	tt := newTester(t, session.Config{MaxConnections: 4}, lineListener{})
	h := &holder{}
	h.fill(t, tt.w)
	c := tt.dial()
	_, err := io.WriteString(c, "waiting\n")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = c.r.ReadByte()
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "no answer and no reset while no token is free: %v", err)
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error { h.give(lp, 8); return nil }))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := c.r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "WAITING\n", got)
	st := tt.status()
	assert.Zero(t, st.RefusedFull)
	assert.EqualValues(t, 1, st.TokenPauses)
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error { h.give(lp, len(h.tokens)); return nil }))
}

// A holder that registered for shortages gives tokens back at once: the
// client is served without waiting for anything else to close.
func TestTokenShortageAsksHoldersToGiveBack(t *testing.T) {
	tt := newTester(t, session.Config{MaxConnections: 4}, lineListener{})
	h := &holder{}
	asked := make(chan int, 8)
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		lp.OnTokenShortage(func(need int) { asked <- need; h.give(lp, need) })
		return nil
	}))
	h.fill(t, tt.w)
	c := tt.dial()
	assert.Equal(t, "SERVED", c.ask(t, "served"))
	assert.Equal(t, 2, <-asked, "a session needs MaxTokensPerSession (2) tokens")
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error { h.give(lp, len(h.tokens)); return nil }))
}
