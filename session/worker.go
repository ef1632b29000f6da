package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/slab"
	"github.com/sluiceproxy/sluice/timer"
)

// Errors returned by the worker's commands.
var (
	ErrStopped         = errors.New("session: worker stopped")
	ErrListenerExists  = errors.New("session: a listener already uses that address")
	ErrNoSuchListener  = errors.New("session: no listener on that address")
	ErrTooManySessions = errors.New("session: no token left")
	ErrNoToken         = errors.New("session: not a live token")
	ErrFrontToken      = errors.New("session: a frontend token cannot be rebound")
	ErrRefused         = errors.New("session: connection refused (a limit, or the listener)")
)

// Config holds a worker's settings. Zero values take the defaults.
type Config struct {
	// MaxConnections bounds the client sessions of the worker. At the
	// limit the listeners stop accepting (connections wait in the
	// kernel's backlog); they resume below 90 %. Default 10,000.
	MaxConnections int
	// MaxConnectionsPerIP bounds the sessions of one client address; a
	// connection beyond it is closed at once. 0 means no limit.
	MaxConnectionsPerIP int
	// MaxTokensPerSession sizes the token slab: MaxConnections times this,
	// plus the listeners (a proxied session holds a frontend and a
	// backend token, so 2 is enough for them). Default 2.
	MaxTokensPerSession int
	// ZombieCheckInterval is how often sessions are checked for having
	// seen no event for that long; such sessions are closed and counted.
	// Default 30 minutes, as in Sōzu.
	ZombieCheckInterval time.Duration
	// Buffers sizes the worker's buffer pool. Default: 16 KiB buffers,
	// at most two per session (MaxConnections × 2).
	Buffers protocol.PoolConfig
	// Pipes sizes the worker's kernel pipes, through which relays between
	// two plain TCP sockets splice bulk transfers ([pipe.Pipe.Splice]).
	// Default: MaxConnections / 4 pipes (as HAProxy's maxpipes), each
	// two descriptors, open only while bytes are in flight (and up to
	// Keep kept for reuse). Negative Max turns splicing off.
	//
	// [pipe.Pipe.Splice]: https://pkg.go.dev/github.com/sluiceproxy/sluice/protocol/pipe#Pipe.Splice
	Pipes protocol.PipePoolConfig
	// Backends tunes failure handling of the worker's backends (back-off,
	// failures before down). Defaults: see [backend.Config].
	Backends backend.Config
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// Loop configures the worker's event loop.
	Loop eventloop.Config
	// KeepGOMAXPROCS makes [Loop.SpareP] and SpareP do nothing:
	// GOMAXPROCS is left to the program.
	KeepGOMAXPROCS bool
	// SpareP keeps a P beyond the running loops from the start, as
	// [Loop.SpareP] does once a session hands work to goroutines. With
	// as many loops as Ps, every wait in epoll_wait that outlasts a tick
	// of the runtime's monitor makes the runtime take the P back and
	// wake a thread to run it, which finds nothing to do and sleeps
	// again; the monitor, having found work, keeps ticking every 20 µs.
	// On one core under load the spare P saved a TCP proxy 2.4 % of its
	// CPU per request (examples/httplb/ab.sh, lower in 33 of 40
	// rounds). It costs its allocation caches: 0.6 to 0.9 MiB of
	// resident memory with one worker. Default off.
	SpareP bool
}

func (c Config) withDefaults() Config {
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10000
	}
	if c.MaxTokensPerSession <= 0 {
		c.MaxTokensPerSession = 2
	}
	if c.ZombieCheckInterval <= 0 {
		c.ZombieCheckInterval = 30 * time.Minute
	}
	if c.Buffers.Max <= 0 {
		c.Buffers.Max = 2 * c.MaxConnections
	}
	if c.Pipes.Max == 0 {
		c.Pipes.Max = max(c.MaxConnections/4, 1)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Status is a worker's snapshot, answered by [Worker.Status].
type Status struct {
	Sessions         int // client sessions open
	Tokens           int // slab entries in use (sessions' sockets, listeners)
	Listeners        int
	AcceptPaused     bool
	Accepted         uint64 // sessions created since start
	Closed           uint64 // sessions closed since start
	RefusedFull      uint64 // accepted then closed: no token left (should stay 0: accept pauses first)
	TokenPauses      uint64 // times accept paused for lack of tokens (idle pooled connections had them); a pause may find no client waiting
	RefusedPerIP     uint64 // accepted then closed: per-IP limit reached
	RefusedNoSession uint64 // the listener could not build a session
	Zombies          uint64 // closed by the zombie check
	Panics           uint64 // sessions closed because they panicked
	ShuttingDown     bool
	BuffersLent      int    // buffers out of the pool now
	BuffersRefused   uint64 // pool exhaustion events since start
	PipesLent        int    // kernel pipes lent to splicing relays now
	PipesRefused     uint64 // splices that copied instead: no pipe to lend
	Clusters         int
}

// entry is what the slab maps a token to: a session or an owner.
type entry struct {
	s      ProxySession
	o      TokenOwner
	front  bool // the session's frontend token (the one that counts as a session)
	closed bool // closed this batch; the key is freed at its end
}

// Worker drives sessions on one event loop. It owns the token slab, the
// listeners and the connection accounting. Its methods are commands:
// safe from any goroutine, applied on the loop between two batches of
// events, answered when applied. What a session does on the loop goes
// through its [Loop].
type Worker struct {
	cfg       Config
	loop      *eventloop.Loop
	handle    *Loop
	tokens    *slab.Slab[entry]
	log       *slog.Logger
	pool      *protocol.Pool
	pipes     *protocol.PipePool
	spare     bool // SpareP was called
	clusters  *backend.Clusters
	checkLoop bool
	loopG     loopGoroutine

	clusterRemoved []func(cluster string)
	tokenShortage  []func(need int)
	backendRemoved []func(b *backend.Backend)
	acceptFailing  int       // accept errors in a row (out of descriptors), for one log line per episode
	tokenPaused    bool      // accept is paused until tokens are free
	tokenWarned    time.Time // the last warning about it

	listeners               map[netip.AddrPort]*listenSession
	perIP                   map[netip.Addr]int32           // with MaxConnectionsPerIP: sessions by client address
	peers                   map[eventloop.Token]netip.Addr // with MaxConnectionsPerIP: the address each front token counts for
	sessions                int
	paused                  bool
	doomed                  []eventloop.Token
	deferred, deferredSpare []deferredDrive // Defer: sessions to drive at the end of the batch
	status                  Status

	locals map[any]any

	stopping    bool // soft stop in progress
	zombieTimer timer.Handle
	stopTimer   timer.Handle
	done        chan struct{}
	final       Status // the counters at the end of Run, for Status after a stop
	running     atomic.Bool
	err         error
}

// The worker's own timers use the highest tokens a loop hands out; the
// slab never reaches them.
const (
	zombieToken = eventloop.MaxToken
	stopToken   = eventloop.MaxToken - 1
	retryToken  = eventloop.MaxToken - 2
	maxUser     = eventloop.MaxToken - 3
)

// NewWorker creates a worker and its loop. Start it with Run.
func NewWorker(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	loop, err := eventloop.New(cfg.Loop)
	if err != nil {
		return nil, err
	}
	limit := cfg.MaxConnections*cfg.MaxTokensPerSession + 64
	if limit > int(maxUser) {
		limit = int(maxUser)
	}
	w := &Worker{
		cfg:       cfg,
		loop:      loop,
		tokens:    slab.New[entry](limit),
		log:       cfg.Logger,
		pool:      protocol.NewPool(cfg.Buffers),
		pipes:     protocol.NewPipePool(cfg.Pipes),
		clusters:  backend.NewClusters(cfg.Backends),
		checkLoop: loopCheckEnabled(),
		listeners: map[netip.AddrPort]*listenSession{},
		perIP:     map[netip.Addr]int32{},
		peers:     map[eventloop.Token]netip.Addr{},
		done:      make(chan struct{}),
	}
	w.handle = &Loop{w: w}
	return w, nil
}

// Run drives the worker until it is stopped, then closes every session
// and listener. It returns once all descriptors are closed.
func (w *Worker) Run() error {
	w.running.Store(true)
	defer close(w.done)
	w.loopStarted()
	defer w.loopStopped()
	if err := w.loop.Post(func() {
		w.loopG.Store(goroutineID())
		w.zombieTimer = w.loop.Timers().Schedule(eventloop.TimerKey{Token: zombieToken}, w.cfg.ZombieCheckInterval)
	}); err != nil {
		return err
	}
	h := (*loopHandler)(w)
	err := w.loop.Run(h)
	w.closeAll()
	w.pipes.Close()
	h.EndBatch()
	w.final = w.snapshot()
	w.loopG.Store(0)
	return err
}

// Done is closed when Run has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

// register gives e a token, with fd registered under it when fd >= 0.
func (w *Worker) register(fd int, e entry) (eventloop.Token, error) {
	v, err := w.tokens.Vacant()
	if err != nil {
		return 0, ErrTooManySessions
	}
	t := eventloop.Token(v.Key())
	if fd >= 0 {
		if err := w.loop.Poller().Register(fd, t, eventloop.InterestBoth); err != nil {
			v.Release()
			return 0, err
		}
	}
	v.Insert(e)
	return t, nil
}

// tokensFree is how many more tokens the slab can hand out now.
func (w *Worker) tokensFree() int {
	return w.tokens.Limit() - w.tokens.Len() - w.tokens.Reserved()
}

// shortOfTokens pauses accept while the tokens a new session needs are
// held by others (idle pooled connections, mostly), leaving clients in
// the backlog as the descriptor shortage and MaxConnections do, rather
// than accepting a connection only to reset it. The holders that said
// they could give some back are asked to; endBatch resumes once enough
// are free.
func (w *Worker) shortOfTokens(need int) {
	if !w.tokenPaused {
		w.tokenPaused = true
		w.status.TokenPauses++
		// Near the limit pauses come and go: one warning a minute.
		if now := w.loop.Now(); now.Sub(w.tokenWarned) >= time.Minute {
			w.tokenWarned = now
			w.log.Warn("accept paused: every token is taken (idle pooled connections hold some); raise MaxTokensPerSession if this repeats",
				"sessions", w.sessions, "tokens", w.tokens.Len(), "limit", w.tokens.Limit(), "pauses", w.status.TokenPauses)
		}
	}
	w.paused = true
	for _, f := range w.tokenShortage {
		f(need)
	}
}

// release deregisters fd (when fd >= 0) and frees t at the end of the
// batch.
func (w *Worker) release(t eventloop.Token, fd int) {
	if fd >= 0 {
		w.loop.Poller().Deregister(fd)
	}
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	e.closed = true
	w.doomed = append(w.doomed, t)
}

// rebind points a live token that is not a frontend token at to.
func (w *Worker) rebind(t eventloop.Token, to entry) error {
	e := w.tokens.Ptr(int(t))
	switch {
	case e == nil || e.closed:
		return ErrNoToken
	case e.front:
		return ErrFrontToken
	}
	e.s, e.o = to.s, to.o
	return nil
}

type deferredDrive struct {
	t eventloop.Token
	s ProxySession
}

// runDeferred drives the sessions deferred during the batch; those they
// defer in turn run too, for a few rounds.
func (w *Worker) runDeferred() {
	for round := 0; len(w.deferred) > 0 && round < 8; round++ {
		list := w.deferred
		w.deferred = w.deferredSpare[:0]
		for _, d := range list {
			w.driveDeferred(d)
		}
		clear(list)
		w.deferredSpare = list[:0]
	}
	if len(w.deferred) > 0 {
		// Still more: the next batch runs them, and must not sleep first.
		w.loop.Post(func() {})
	}
}

func (w *Worker) driveDeferred(d deferredDrive) {
	e := w.tokens.Ptr(int(d.t))
	if e == nil || e.closed || e.s != d.s {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			w.panicked(d.t, v, debug.Stack()) // as for a panic in an event
		}
	}()
	w.drive(d.s)
}

// event dispatches readiness for t to its session or owner.
func (w *Worker) event(t eventloop.Token, r eventloop.Ready) {
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	if e.o != nil {
		e.o.Event(t, r)
		return
	}
	s := e.s
	s.UpdateReadiness(t, r)
	w.drive(s)
}

// drive calls Ready until the session has nothing left to do.
func (w *Worker) drive(s ProxySession) {
	for i := 0; ; i++ {
		switch s.Ready(s) {
		case Continue:
			return
		case Close:
			w.closeSession(s)
			return
		}
		if i > 1000 {
			// A session that never settles would starve every other one.
			w.log.Error("session did not settle after 1000 rounds; closing it", "protocol", s.Protocol())
			w.closeSession(s)
			return
		}
	}
}

// timeout dispatches a fired timer.
func (w *Worker) timeout(t eventloop.Token, name eventloop.TimerName) {
	switch t {
	case zombieToken:
		w.zombieCheck()
		return
	case stopToken:
		w.shutdownRound()
		return
	case retryToken:
		if w.sessions < w.cfg.MaxConnections {
			w.resumeAccept()
		}
		return
	}
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	if e.o != nil {
		e.o.Timeout(t, name)
		return
	}
	s := e.s
	switch s.Timeout(t, name) {
	case Close:
		w.closeSession(s)
	case Again:
		w.drive(s)
	}
}

// panicked closes the session or owner whose event panicked and counts
// it; the others go on.
func (w *Worker) panicked(t eventloop.Token, v any, stack []byte) {
	w.status.Panics++
	w.log.Error("session panicked; closing it", "token", t, "panic", fmt.Sprint(v), "stack", string(stack))
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	if e.o != nil {
		w.closeOwner(t, e.o)
		return
	}
	w.closeSafely(e.s)
}

// closeOwner closes a token owner; its token is freed even if it panics
// again or forgets to.
func (w *Worker) closeOwner(t eventloop.Token, o TokenOwner) {
	defer func() {
		if v := recover(); v != nil {
			w.log.Error("token owner panicked in Close", "panic", fmt.Sprint(v))
		}
		w.release(t, -1)
	}()
	o.Close()
}

// closeSafely closes a session whose state may be broken: a second panic
// from its Close is contained too, and its frontend slot is freed anyway.
func (w *Worker) closeSafely(s ProxySession) {
	defer func() {
		if v := recover(); v != nil {
			w.log.Error("session panicked in Close", "panic", fmt.Sprint(v))
			w.forget(s.FrontendToken())
		}
	}()
	w.closeSession(s)
}

// closeSession closes s and frees its frontend slot.
func (w *Worker) closeSession(s ProxySession) {
	t := s.FrontendToken()
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed || e.s != s {
		return
	}
	e.closed = true // before Close, so that a panic there cannot loop
	s.Close()
	w.forget(t)
}

// forget frees a frontend token and its connection accounting.
func (w *Worker) forget(t eventloop.Token) {
	e := w.tokens.Ptr(int(t))
	if e == nil {
		return
	}
	e.closed = true
	w.doomed = append(w.doomed, t)
	if !e.front {
		return
	}
	e.front = false
	w.sessions--
	w.status.Closed++
	if ip, ok := w.peers[t]; ok {
		delete(w.peers, t)
		if n := w.perIP[ip] - 1; n > 0 {
			w.perIP[ip] = n
		} else {
			delete(w.perIP, ip)
		}
	}
	if w.paused && w.sessions < w.cfg.MaxConnections*9/10 {
		w.resumeAccept()
	}
}

// endBatch frees the tokens closed during the batch, now that no event of
// the batch can name them.
func (w *Worker) endBatch() {
	w.runDeferred()
	for _, t := range w.doomed {
		w.tokens.Remove(int(t))
	}
	w.doomed = w.doomed[:0]
	if w.tokenPaused && !w.stopping && w.tokensFree() >= w.cfg.MaxTokensPerSession {
		w.tokenPaused = false
		if w.sessions < w.cfg.MaxConnections {
			w.resumeAccept()
		}
	}
	if w.stopping && w.sessions == 0 {
		w.loop.Stop()
	}
}

func (w *Worker) zombieCheck() {
	now := w.loop.Now()
	limit := w.cfg.ZombieCheckInterval
	for key, e := range w.tokens.All() {
		if !e.front || e.closed {
			continue
		}
		if now.Sub(e.s.LastEvent()) > limit {
			w.status.Zombies++
			var b dumpBuffer
			e.s.PrintSession(&b)
			w.log.Warn("closing zombie session", "token", key, "state", b.String())
			w.closeSafely(e.s)
		}
	}
	w.zombieTimer = w.loop.Timers().Schedule(eventloop.TimerKey{Token: zombieToken}, w.cfg.ZombieCheckInterval)
}

// closeAll closes every session, owner and listener: hard stop, or the
// end of Run.
func (w *Worker) closeAll() {
	for key, e := range w.tokens.All() {
		switch {
		case e.closed:
		case e.o != nil:
			w.closeOwner(eventloop.Token(key), e.o)
		default:
			w.closeSafely(e.s)
		}
	}
	w.closeListeners()
}

// closeListeners closes every listening socket, in address order (not
// the map's, so that a simulation's run is the same every time).
func (w *Worker) closeListeners() {
	addrs := make([]netip.AddrPort, 0, len(w.listeners))
	for a := range w.listeners {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	for _, a := range addrs {
		w.listeners[a].close(w)
		delete(w.listeners, a)
	}
}

// loopHandler is the worker as its event loop sees it: the dispatch
// plumbing stays out of the worker's exported methods.
type loopHandler Worker

func (h *loopHandler) Event(t eventloop.Token, r eventloop.Ready)       { (*Worker)(h).event(t, r) }
func (h *loopHandler) Timeout(t eventloop.Token, n eventloop.TimerName) { (*Worker)(h).timeout(t, n) }
func (h *loopHandler) EndBatch()                                        { (*Worker)(h).endBatch() }
func (h *loopHandler) Panic(t eventloop.Token, v any, stack []byte) {
	(*Worker)(h).panicked(t, v, stack)
}

// dumpBuffer collects a session dump for a log line.
type dumpBuffer struct{ b []byte }

func (d *dumpBuffer) Write(p []byte) (int, error) {
	if len(d.b)+len(p) > 4096 {
		p = p[:max(0, 4096-len(d.b))]
	}
	d.b = append(d.b, p...)
	return len(p), nil
}

func (d *dumpBuffer) String() string { return string(d.b) }

var (
	_ eventloop.Handler    = (*loopHandler)(nil)
	_ eventloop.BatchEnder = (*loopHandler)(nil)
)

// loops counts the workers running in the process, and those among
// them that hand work to goroutines (see Loop.SpareP).
var loops struct {
	sync.Mutex
	n, spare int
}

// loopStarted counts a running loop, and keeps the spare P if a running
// loop asked for one or this worker's Config does.
func (w *Worker) loopStarted() {
	loops.Lock()
	loops.n++
	if loops.spare > 0 && !w.cfg.KeepGOMAXPROCS {
		raiseGOMAXPROCS(w.log)
	}
	loops.Unlock()
	if w.cfg.SpareP {
		w.spareP()
	}
}

func (w *Worker) loopStopped() {
	loops.Lock()
	defer loops.Unlock()
	loops.n--
	if w.spare {
		loops.spare--
	}
}

// spareP is Loop.SpareP: the first call of a worker raises GOMAXPROCS
// to one more than the running loops, if it is not already.
func (w *Worker) spareP() {
	if w.spare || w.cfg.KeepGOMAXPROCS {
		return
	}
	w.spare = true
	loops.Lock()
	defer loops.Unlock()
	loops.spare++
	raiseGOMAXPROCS(w.log)
}

// raiseGOMAXPROCS makes GOMAXPROCS one more than the running loops, if
// it is lower; it never lowers it. Called with loops held.
func raiseGOMAXPROCS(log *slog.Logger) {
	if p := runtime.GOMAXPROCS(0); p <= loops.n {
		runtime.GOMAXPROCS(loops.n + 1)
		log.Info("raised GOMAXPROCS: each event loop keeps a P while it waits for events, and the goroutines it hands work to need another",
			"from", p, "to", loops.n+1)
	}
}
