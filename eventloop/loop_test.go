package eventloop_test

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/timer"
)

// recorder is a Handler whose callbacks a test fills in. Every callback
// runs on the loop goroutine, so the fields need no lock there; the test
// reads results through channels or after Done.
type recorder struct {
	event   func(eventloop.Token, eventloop.Ready)
	timeout func(eventloop.Token)
	panics  chan any
	batches atomic.Int64
}

func (r *recorder) Event(t eventloop.Token, rd eventloop.Ready) {
	if r.event != nil {
		r.event(t, rd)
	}
}

func (r *recorder) Timeout(t eventloop.Token, _ eventloop.TimerName) {
	if r.timeout != nil {
		r.timeout(t)
	}
}

func (r *recorder) Panic(t eventloop.Token, v any, stack []byte) {
	if r.panics != nil {
		r.panics <- v
	}
}

func (r *recorder) EndBatch() { r.batches.Add(1) }

// run starts l.Run(h) on its own goroutine and stops it with the test.
func run(t *testing.T, l *eventloop.Loop, h eventloop.Handler) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- l.Run(h) }()
	t.Cleanup(func() {
		l.Stop()
		select {
		case err := <-errc:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("loop did not stop")
		}
	})
}

// goid is the current goroutine's id, read from its stack header; only
// tests use it, to prove where code ran.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

func newLoop(t *testing.T, cfg eventloop.Config) *eventloop.Loop {
	t.Helper()
	l, err := eventloop.New(cfg)
	require.NoError(t, err)
	return l
}

func TestPostRunsOnTheLoopGoroutine(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	loopID := make(chan uint64, 1)
	require.NoError(t, l.Post(func() { loopID <- goid() }))
	run(t, l, &recorder{})
	id := <-loopID

	// Many goroutines post concurrently; every item runs, on the loop.
	const senders, each = 8, 500
	var wg sync.WaitGroup
	var ran, wrong atomic.Int64
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				require.NoError(t, l.Post(func() {
					if goid() != id {
						wrong.Add(1)
					}
					ran.Add(1)
				}))
			}
		}()
	}
	wg.Wait()
	eventually(t, func() bool { return ran.Load() == senders*each }, "posted work did not all run")
	assert.Zero(t, wrong.Load())
}

func TestWakerWakesABlockedLoop(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	h := &recorder{}
	run(t, l, h)
	// The loop has no timers and no descriptors: once its first round is
	// over it blocks in Wait with no timeout until something wakes it.
	first := make(chan struct{})
	require.NoError(t, l.Post(func() { close(first) }))
	<-first
	eventually(t, func() bool { return h.batches.Load() >= 1 }, "first round")
	time.Sleep(20 * time.Millisecond)
	before := h.batches.Load()
	done := make(chan struct{})
	start := time.Now()
	go func() { require.NoError(t, l.Post(func() { close(done) })) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("posted work never ran: the waker did not wake Wait")
	}
	assert.Less(t, time.Since(start), time.Second)
	eventually(t, func() bool { return h.batches.Load() > before }, "a new round ran")
}

func TestStopClosesEverything(t *testing.T) {
	checkGoroutines(t)
	fdsBefore := openFDs(t)
	l := newLoop(t, eventloop.Config{})
	errc := make(chan error, 1)
	go func() { errc <- l.Run(&recorder{}) }()
	require.NoError(t, l.Post(func() {}))
	l.Stop()
	l.Stop() // idempotent
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("loop did not stop")
	}
	require.NoError(t, <-errc)
	assert.Equal(t, fdsBefore, openFDs(t), "poller and waker descriptors must be closed")
	assert.ErrorIs(t, l.Post(func() {}), eventloop.ErrClosed)
	assert.ErrorIs(t, l.Run(&recorder{}), eventloop.ErrClosed)

	// A loop that never ran is released by Close.
	l2 := newLoop(t, eventloop.Config{})
	require.NoError(t, l2.Close())
	assert.Equal(t, fdsBefore, openFDs(t))
}

func TestWorkPostedBeforeStopStillRuns(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	var ran atomic.Int64
	for i := 0; i < 100; i++ {
		require.NoError(t, l.Post(func() { ran.Add(1) }))
	}
	l.Stop()
	require.NoError(t, l.Run(&recorder{}))
	assert.EqualValues(t, 100, ran.Load())
}

func TestRunTwiceIsRefused(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	started := make(chan struct{})
	require.NoError(t, l.Post(func() { close(started) }))
	run(t, l, &recorder{})
	<-started
	assert.ErrorIs(t, l.Run(&recorder{}), eventloop.ErrRunning)
}

func TestPanicInHandlerIsRecoveredAndLoopGoesOn(t *testing.T) {
	checkGoroutines(t)
	lfd, addr := listener(t)
	l := newLoop(t, eventloop.Config{})
	const conns = 4
	var servers, clients []int
	for i := 0; i < conns; i++ {
		s, c := pair(t, lfd, addr)
		waitWritable(t, c)
		servers, clients = append(servers, s), append(clients, c)
		require.NoError(t, l.Poller().Register(s, eventloop.Token(i), eventloop.InterestRead))
	}
	defer func() {
		for i := range servers {
			unix.Close(servers[i])
			unix.Close(clients[i])
		}
	}()
	var seen [conns]atomic.Int64
	h := &recorder{panics: make(chan any, 16)}
	h.event = func(tok eventloop.Token, r eventloop.Ready) {
		var buf [16]byte
		unix.Read(servers[tok], buf[:])
		seen[tok].Add(1)
		if tok == 1 {
			panic("session 1 is broken")
		}
	}
	h.timeout = func(tok eventloop.Token) { panic("timer " + strconv.Itoa(int(tok))) }
	run(t, l, h)
	// All four become readable, most likely in one batch: the panic on
	// token 1 must not keep the others from being dispatched.
	for _, c := range clients {
		_, err := unix.Write(c, []byte("x"))
		require.NoError(t, err)
	}
	eventually(t, func() bool {
		for i := range seen {
			if seen[i].Load() == 0 {
				return false
			}
		}
		return true
	}, "every session got its event")
	assert.Equal(t, "session 1 is broken", <-h.panics)

	// A panicking timer and a panicking posted function are recovered
	// too; the loop still runs work afterwards.
	require.NoError(t, l.Post(func() { l.Timers().Schedule(eventloop.TimerKey{Token: 42}, 0) }))
	assert.Equal(t, "timer 42", <-h.panics)
	require.NoError(t, l.Post(func() { panic("posted") }))
	assert.Equal(t, "posted", <-h.panics)
	ok := make(chan struct{})
	require.NoError(t, l.Post(func() { close(ok) }))
	<-ok
}

func TestTimersFireInOrderAndNotEarly(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	type fired struct {
		tok eventloop.Token
		at  time.Time
	}
	got := make(chan fired, 8)
	h := &recorder{timeout: func(tok eventloop.Token) { got <- fired{tok, time.Now()} }}
	var start time.Time
	durations := map[eventloop.Token]time.Duration{1: 60 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond}
	scheduled := make(chan struct{})
	require.NoError(t, l.Post(func() {
		start = time.Now()
		for tok, d := range durations {
			l.Timers().Schedule(eventloop.TimerKey{Token: tok}, d)
		}
		close(scheduled)
	}))
	run(t, l, h)
	<-scheduled
	var order []eventloop.Token
	for i := 0; i < 3; i++ {
		select {
		case f := <-got:
			order = append(order, f.tok)
			assert.GreaterOrEqual(t, f.at.Sub(start), durations[f.tok], "timer %d fired early", f.tok)
		case <-time.After(5 * time.Second):
			t.Fatal("timer did not fire")
		}
	}
	assert.Equal(t, []eventloop.Token{2, 3, 1}, order)
}

// virtualClock is a clock the test moves by hand.
type virtualClock struct{ ns atomic.Int64 }

func (c *virtualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *virtualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestTimersOnVirtualClock(t *testing.T) {
	checkGoroutines(t)
	clock := &virtualClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	l := newLoop(t, eventloop.Config{Timer: timer.Config{Now: clock.Now}})
	fired := make(chan eventloop.Token, 8)
	run(t, l, &recorder{timeout: func(tok eventloop.Token) { fired <- tok }})
	done := make(chan struct{})
	require.NoError(t, l.Post(func() {
		l.Timers().Schedule(eventloop.TimerKey{Token: 1}, 10*time.Second)
		l.Timers().Schedule(eventloop.TimerKey{Token: 2}, time.Hour)
		close(done)
	}))
	<-done
	poke := func() { // wake the loop so it polls the wheel again
		ran := make(chan struct{})
		require.NoError(t, l.Post(func() { close(ran) }))
		<-ran
	}
	clock.Advance(9999 * time.Millisecond)
	poke()
	poke()
	assert.Empty(t, fired, "nothing is due before 10 s")
	clock.Advance(time.Millisecond)
	poke()
	eventually(t, func() bool { return len(fired) == 1 }, "the 10 s timer fires")
	assert.Equal(t, eventloop.Token(1), <-fired)
	clock.Advance(time.Hour)
	poke()
	eventually(t, func() bool { return len(fired) == 1 }, "the 1 h timer fires")
	assert.Equal(t, eventloop.Token(2), <-fired)
}

// TestFiveThousandConnections registers 5,000 live connections with one
// loop and checks that each one's data and close reach its own token.
func TestFiveThousandConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 descriptors")
	}
	checkGoroutines(t)
	lfd, addr := listener(t)
	fdsBefore := openFDs(t)
	const n = 5000
	servers := make([]int, n)
	clients := make([]int, n)
	for i := range servers {
		servers[i], clients[i] = pair(t, lfd, addr)
	}
	l := newLoop(t, eventloop.Config{Events: 512})
	for i, s := range servers {
		require.NoError(t, l.Poller().Register(s, eventloop.Token(i), eventloop.InterestRead))
	}
	var bytesSeen, closed atomic.Int64
	got := make([]byte, n) // only the loop touches it until Done
	h := &recorder{event: func(tok eventloop.Token, r eventloop.Ready) {
		var buf [8]byte
		for { // drain to EAGAIN, as edge triggering requires
			k, err := unix.Read(servers[tok], buf[:])
			if k > 0 {
				got[tok] = buf[0]
				bytesSeen.Add(int64(k))
				continue
			}
			if k == 0 && err == nil {
				l.Poller().Deregister(servers[tok])
				unix.Close(servers[tok])
				closed.Add(1)
			}
			return
		}
	}}
	errc := make(chan error, 1)
	go func() { errc <- l.Run(h) }()
	for i, c := range clients {
		waitWritable(t, c)
		_, err := unix.Write(c, []byte{byte(i % 251)})
		require.NoError(t, err)
	}
	eventually(t, func() bool { return bytesSeen.Load() == n }, "every connection's byte arrives")
	for _, c := range clients {
		unix.Close(c)
	}
	eventually(t, func() bool { return closed.Load() == n }, "every close arrives")
	l.Stop()
	require.NoError(t, <-errc)
	for i := range got {
		require.Equal(t, byte(i%251), got[i], "token %d got another connection's data", i)
	}
	assert.Equal(t, fdsBefore, openFDs(t))
}

// TestWakeStormLosesNoWork posts from many goroutines at once, many
// times over. It caught a waker that cleared its pending flag before
// draining the eventfd: a write landing on a non-zero counter raised no
// new edge, the flag stayed set, and the loop slept with work queued.
func TestWakeStormLosesNoWork(t *testing.T) {
	checkGoroutines(t)
	for rep := 0; rep < 100; rep++ {
		l := newLoop(t, eventloop.Config{})
		errc := make(chan error, 1)
		go func() { errc <- l.Run(&recorder{}) }()
		var ran atomic.Int64
		var wg sync.WaitGroup
		for s := 0; s < 8; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if err := l.Post(func() { ran.Add(1) }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for ran.Load() != 1600 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		require.EqualValues(t, 1600, ran.Load(), "rep %d: posted work stranded", rep)
		l.Stop()
		require.NoError(t, <-errc)
	}
}

// TestStopAfterCloseWritesNowhere: a Stop or Post after the loop closed
// must not write to the waker's old descriptor number, which the process
// may have reused for something else by then.
func TestStopAfterCloseWritesNowhere(t *testing.T) {
	checkGoroutines(t)
	l := newLoop(t, eventloop.Config{})
	errc := make(chan error, 1)
	go func() { errc <- l.Run(&recorder{}) }()
	l.Stop()
	require.NoError(t, <-errc)
	// Take the freed descriptor numbers with pipes of our own.
	var fds [4][2]int
	for i := range fds {
		require.NoError(t, unix.Pipe(fds[i][:]))
		require.NoError(t, unix.SetNonblock(fds[i][0], true))
	}
	defer func() {
		for i := range fds {
			unix.Close(fds[i][0])
			unix.Close(fds[i][1])
		}
	}()
	l.Stop()
	assert.ErrorIs(t, l.Post(func() {}), eventloop.ErrClosed)
	for i := range fds {
		var buf [16]byte
		n, _ := unix.Read(fds[i][0], buf[:])
		assert.LessOrEqual(t, n, 0, "pipe %d received %d bytes from a dead loop", i, n)
	}
}
