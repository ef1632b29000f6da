package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/slab"
	"github.com/sluiceproxy/sluice/timer"
)

// Errors returned by the worker's commands.
var (
	ErrStopped         = errors.New("session: worker stopped")
	ErrListenerExists  = errors.New("session: a listener already uses that address")
	ErrNoSuchListener  = errors.New("session: no listener on that address")
	ErrTooManySessions = errors.New("session: no token left")
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
	// Backends tunes failure handling of the worker's backends (back-off,
	// failures before down). Defaults: see [backend.Config].
	Backends backend.Config
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// Loop configures the worker's event loop.
	Loop eventloop.Config
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
	RefusedFull      uint64 // accepted then closed: MaxConnections reached
	RefusedPerIP     uint64 // accepted then closed: per-IP limit reached
	RefusedNoSession uint64 // the listener could not build a session
	Zombies          uint64 // closed by the zombie check
	Panics           uint64 // sessions closed because they panicked
	ShuttingDown     bool
	BuffersLent      int    // buffers out of the pool now
	BuffersRefused   uint64 // pool exhaustion events since start
	Clusters         int
}

// entry is what the slab maps a token to.
type entry struct {
	s      ProxySession
	peer   netip.Addr // client address counted for the per-IP limit; front tokens only
	front  bool       // the session's frontend token (the one that counts as a session)
	closed bool       // closed this batch; the key is freed at its end
}

// Worker drives sessions on one event loop. It owns the token slab, the
// listeners and the connection accounting; every method that is not a
// command must be called on its loop (from a session's methods).
type Worker struct {
	cfg      Config
	loop     *eventloop.Loop
	tokens   *slab.Slab[entry]
	log      *slog.Logger
	pool     *protocol.Pool
	clusters *backend.Clusters
	router   *router.Router

	listeners               map[netip.AddrPort]*listenSession
	perIP                   map[netip.Addr]int32
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
	return &Worker{
		cfg:       cfg,
		loop:      loop,
		tokens:    slab.New[entry](limit),
		log:       cfg.Logger,
		pool:      protocol.NewPool(cfg.Buffers),
		clusters:  backend.NewClusters(cfg.Backends),
		router:    router.New(),
		listeners: map[netip.AddrPort]*listenSession{},
		perIP:     map[netip.Addr]int32{},
		done:      make(chan struct{}),
	}, nil
}

// Run drives the worker until it is stopped, then closes every session
// and listener. It returns once all descriptors are closed.
func (w *Worker) Run() error {
	defer close(w.done)
	if err := w.loop.Post(func() {
		w.zombieTimer = w.loop.Timers().Schedule(zombieToken, w.cfg.ZombieCheckInterval)
	}); err != nil {
		return err
	}
	err := w.loop.Run(w)
	w.closeAll()
	w.EndBatch()
	return err
}

// Done is closed when Run has returned.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Loop is the worker's event loop.
func (w *Worker) Loop() *eventloop.Loop { return w.loop }

// Logger is the worker's logger, for sessions.
func (w *Worker) Logger() *slog.Logger { return w.log }

// Pool is the worker's buffer pool.
func (w *Worker) Pool() *protocol.Pool { return w.pool }

// Clusters is the worker's cluster and backend registry.
func (w *Worker) Clusters() *backend.Clusters { return w.clusters }

// Router is the worker's HTTP routing table.
func (w *Worker) Router() *router.Router { return w.router }

// ShuttingDown reports whether a soft stop is under way, so that
// sessions can announce the end of their connections (Connection: close).
func (w *Worker) ShuttingDown() bool { return w.stopping }

// Now is the time the current batch started.
func (w *Worker) Now() time.Time { return w.loop.Now() }

// Timers is the worker's timer wheel; a session keys its timers by its
// own tokens and hears of them through its Timeout method.
func (w *Worker) Timers() *timer.Wheel[eventloop.Token] { return w.loop.Timers() }

// Insert gives s a token with no descriptor: for an owner that only
// needs timers (a health checker between checks), or that attaches
// descriptors to the token later with Attach. Free it with Release(t, -1).
func (w *Worker) Insert(s ProxySession) (eventloop.Token, error) {
	v, err := w.tokens.Vacant()
	if err != nil {
		return 0, ErrTooManySessions
	}
	v.Insert(entry{s: s})
	return eventloop.Token(v.Key()), nil
}

// Attach registers fd with the poller under the existing token t
// (edge-triggered, readable and writable).
func (w *Worker) Attach(fd int, t eventloop.Token) error {
	return w.loop.Poller().Register(fd, t, eventloop.InterestBoth)
}

// Detach deregisters fd; its token stays.
func (w *Worker) Detach(fd int) { w.loop.Poller().Deregister(fd) }

// Rebind points token t, owned by another session or by nobody in
// particular (a pooled backend connection), at s. It reports false if t
// is not a live token. The frontend-token accounting does not move.
func (w *Worker) Rebind(t eventloop.Token, s ProxySession) bool {
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed || e.front {
		return false
	}
	e.s = s
	return true
}

// Defer asks the worker to drive s, whose frontend token is t, once more
// at the end of the current batch, after every event, timer and posted
// work of it: for work worth doing once per batch rather than once per
// event (an HTTP/2 connection writing in one system call the frames all
// its streams produced). Call it on the loop; the session keeps its own
// flag if it must not be deferred twice.
func (w *Worker) Defer(t eventloop.Token, s ProxySession) {
	w.deferred = append(w.deferred, deferredDrive{t, s})
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
			w.Panic(d.t, v, debug.Stack()) // as for a panic in an event
		}
	}()
	w.drive(d.s)
}

// CloseSession closes s now, from the worker's loop: for a session that
// owns others (an HTTP/2 connection and the sessions of its streams).
func (w *Worker) CloseSession(s ProxySession) { w.closeSafely(s) }

// Wake asks the worker to drive s, whose frontend token is t, once more:
// for work a session handed off the loop (a TLS handshake on a pool
// goroutine) to report its end. It is safe from any goroutine; it does
// nothing if s has closed by then or the worker has stopped.
func (w *Worker) Wake(t eventloop.Token, s ProxySession) {
	w.loop.Post(func() {
		e := w.tokens.Ptr(int(t))
		if e == nil || e.closed || e.s != s {
			return
		}
		w.drive(s)
	})
}

// Local returns the worker's value for key, creating it with init the
// first time: per-worker state a protocol shares between its sessions
// (pools, scratch buffers), reached without locks because only the
// worker's loop touches it. Call it on the loop.
func (w *Worker) Local(key any, init func() any) any {
	if v, ok := w.locals[key]; ok {
		return v
	}
	if w.locals == nil {
		w.locals = map[any]any{}
	}
	v := init()
	w.locals[key] = v
	return v
}

// Register gives s a new token for fd and registers fd with the poller
// (InterestBoth, edge-triggered). Sessions call it for backend sockets.
func (w *Worker) Register(fd int, s ProxySession) (eventloop.Token, error) {
	v, err := w.tokens.Vacant()
	if err != nil {
		return 0, ErrTooManySessions
	}
	t := eventloop.Token(v.Key())
	if err := w.loop.Poller().Register(fd, t, eventloop.InterestBoth); err != nil {
		v.Release()
		return 0, err
	}
	v.Insert(entry{s: s})
	return t, nil
}

// Release deregisters fd (when fd >= 0) and frees t at the end of the
// batch, so that an event already queued for t is dropped instead of
// reaching whoever gets t next. Sessions call it from Close for every
// token but the frontend one, and when they drop a backend connection.
func (w *Worker) Release(t eventloop.Token, fd int) {
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

// Event implements eventloop.Handler.
func (w *Worker) Event(t eventloop.Token, r eventloop.Ready) {
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	s := e.s
	s.UpdateReadiness(t, r)
	w.drive(s)
}

// drive calls Ready until the session has nothing left to do.
func (w *Worker) drive(s ProxySession) {
	for i := 0; ; i++ {
		res := s.Ready(s)
		switch res {
		case Continue:
			return
		case Close:
			w.closeSession(s)
			return
		case ConnectBackend:
			c, ok := s.(BackendConnector)
			if !ok {
				w.log.Error("session asked for a backend but cannot connect one", "protocol", s.Protocol())
				w.closeSession(s)
				return
			}
			if c.ConnectBackend(s) == Close {
				w.closeSession(s)
				return
			}
		}
		if i > 1000 {
			// A session that never settles would starve every other one.
			w.log.Error("session did not settle after 1000 rounds; closing it", "protocol", s.Protocol())
			w.closeSession(s)
			return
		}
	}
}

// Timeout implements eventloop.Handler.
func (w *Worker) Timeout(t eventloop.Token) {
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
	s := e.s
	switch s.Timeout(t) {
	case Close:
		w.closeSession(s)
	case ConnectBackend:
		w.drive(s)
	}
}

// Panic implements eventloop.Handler: the session whose event panicked
// is closed and counted; the others go on.
func (w *Worker) Panic(t eventloop.Token, v any, stack []byte) {
	w.status.Panics++
	w.log.Error("session panicked; closing it", "token", t, "panic", fmt.Sprint(v), "stack", string(stack))
	e := w.tokens.Ptr(int(t))
	if e == nil || e.closed {
		return
	}
	w.closeSafely(e.s)
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
	if e.peer.IsValid() {
		if n := w.perIP[e.peer] - 1; n > 0 {
			w.perIP[e.peer] = n
		} else {
			delete(w.perIP, e.peer)
		}
	}
	if w.paused && w.sessions < w.cfg.MaxConnections*9/10 {
		w.resumeAccept()
	}
}

// EndBatch implements eventloop.BatchEnder: tokens closed during the
// batch are freed now that no event of the batch can name them.
func (w *Worker) EndBatch() {
	w.runDeferred()
	for _, t := range w.doomed {
		w.tokens.Remove(int(t))
	}
	w.doomed = w.doomed[:0]
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
	w.zombieTimer = w.loop.Timers().Schedule(zombieToken, w.cfg.ZombieCheckInterval)
}

// closeAll closes every session and listener: hard stop, or the end of
// Run. Entries that are not sessions (pooled backend connections) are
// closed too: each is its own frontend token.
func (w *Worker) closeAll() {
	for _, e := range w.tokens.All() {
		if !e.closed {
			w.closeSafely(e.s)
		}
	}
	for addr, l := range w.listeners {
		l.close(w)
		delete(w.listeners, addr)
	}
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
	_ eventloop.Handler    = (*Worker)(nil)
	_ eventloop.BatchEnder = (*Worker)(nil)
)
