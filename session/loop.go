package session

import (
	"log/slog"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/timer"
)

// Loop is what a session may do on its worker's event loop: take and give
// back tokens, arm timers, borrow buffers, read the clock, reach the
// worker's clusters and per-worker state. A session gets it from
// [Listener.NewSession] and keeps it.
//
// Every method is loop-only (call it from a session's methods, a
// [TokenOwner]'s, or a function run by [Worker.Exec]) except [Loop.Wake]
// and [Loop.Post], which are safe from any goroutine. In tests (and with
// SLUICE_CHECKLOOP=1) loop-only methods panic when called from another
// goroutine.
type Loop struct {
	w *Worker
}

// TokenOwner holds a token without being a client session: a pooled
// backend connection, a health check, a timer of its own. It gets the
// events and timers of its token; it closes what it holds, and releases
// its token, when the worker stops or when it decides to.
type TokenOwner interface {
	// Event reports readiness for t.
	Event(t eventloop.Token, r eventloop.Ready)
	// Timeout reports that the timer named name of token t fired.
	Timeout(t eventloop.Token, name eventloop.TimerName)
	// Close releases what the owner holds, its token among them. It is
	// called when the worker stops, or when Event or Timeout panicked.
	Close()
}

// Now is the time the current batch of events started: cheap, and the
// same for every session of the batch.
func (l *Loop) Now() time.Time {
	l.check("Now")
	return l.w.loop.Now()
}

// Timers is the worker's timer wheel, for pushing back ([timer.Wheel.Reset])
// and cancelling the timers [Loop.Schedule] armed.
func (l *Loop) Timers() *timer.Wheel[eventloop.TimerKey] {
	l.check("Timers")
	return l.w.loop.Timers()
}

// Schedule arms a timer that fires once, after d, as Timeout(t, name) on
// the owner of token t. A session keys its timers by its own tokens and
// tells the timers of one token apart by name (an idle timer and a
// connect timer on the backend token); names at or above
// [ReservedTimerNames] belong to this module's building blocks, such as
// the [Dialer]'s connect timer. Keep the handle to push the timer back
// or cancel it through [Loop.Timers]; the wheel forgets a timer once it
// fired.
func (l *Loop) Schedule(t eventloop.Token, name eventloop.TimerName, d time.Duration) timer.Handle {
	l.check("Schedule")
	return l.w.loop.Timers().Schedule(eventloop.TimerKey{Token: t, Name: name}, d)
}

// ReservedTimerNames is the first timer name reserved for this module's
// building blocks; a session names its own timers below it.
const ReservedTimerNames eventloop.TimerName = 240

// DialTimer is the name of a [Dialer]'s connect timer on its token.
const DialTimer eventloop.TimerName = 255

// SpareP makes sure the process has a P (a slot for running a
// goroutine, GOMAXPROCS of them) beyond the running loops; call it
// before a loop first hands work to a goroutine it then waits for (a
// TLS handshake on a pool, as httpproxy does). A loop waiting in
// epoll_wait or kevent keeps its P for as long as it waits, so with as
// many loops as Ps a goroutine the loop wakes waits for the runtime's
// monitor to take a P back, every 20 µs to 10 ms, before it runs: a
// full TLS handshake crosses four times. GOMAXPROCS is raised (never
// lowered) once per worker and the change logged, unless
// [Config.KeepGOMAXPROCS]; it is not raised by default because the
// spare P costs memory (its allocation caches: about 0.7 MiB with one
// worker) that a proxy which never hands off work does not need;
// [Config.SpareP] keeps it from the start, for the CPU it saves a busy
// loop.
func (l *Loop) SpareP() {
	l.check("SpareP")
	l.w.spareP()
}

// Pipes is the worker's pool of kernel pipes, for relays that splice
// ([pipe.Pipe.Splice]); it lends none where splicing is off or not
// supported.
//
// [pipe.Pipe.Splice]: https://pkg.go.dev/github.com/sluiceproxy/sluice/protocol/pipe#Pipe.Splice
func (l *Loop) Pipes() *protocol.PipePool {
	l.check("Pipes")
	return l.w.pipes
}

// Pool is the worker's bounded buffer pool.
func (l *Loop) Pool() *protocol.Pool {
	l.check("Pool")
	return l.w.pool
}

// Clusters is the worker's copy of the clusters and backends.
func (l *Loop) Clusters() *backend.Clusters {
	l.check("Clusters")
	return l.w.clusters
}

// Logger is the worker's logger; it is safe anywhere.
func (l *Loop) Logger() *slog.Logger { return l.w.log }

// ShuttingDown reports whether a soft stop is under way, so that a
// session can announce the end of its connection (HTTP's Connection:
// close) before it is asked to end.
func (l *Loop) ShuttingDown() bool {
	l.check("ShuttingDown")
	return l.w.stopping
}

// Register gives s a new token for fd and registers fd with the poller
// (edge-triggered, readable and writable): a session's backend socket.
// With fd < 0 the token has no descriptor yet, for timers alone or for
// [Loop.Attach] later. Free it with [Loop.Release].
func (l *Loop) Register(fd int, s ProxySession) (eventloop.Token, error) {
	l.check("Register")
	return l.w.register(fd, entry{s: s})
}

// RegisterOwner is [Loop.Register] for a [TokenOwner].
func (l *Loop) RegisterOwner(fd int, o TokenOwner) (eventloop.Token, error) {
	l.check("RegisterOwner")
	return l.w.register(fd, entry{o: o})
}

// Attach registers fd with the poller under t (edge-triggered, readable
// and writable): a descriptor for a token taken with fd < 0.
func (l *Loop) Attach(fd int, t eventloop.Token) error {
	l.check("Attach")
	return l.w.loop.Poller().Register(fd, t, eventloop.InterestBoth)
}

// Detach deregisters fd; its token stays.
func (l *Loop) Detach(fd int) {
	l.check("Detach")
	l.w.loop.Poller().Deregister(fd)
}

// Release deregisters fd (when fd >= 0) and frees t at the end of the
// batch, so that an event already queued for t is dropped instead of
// reaching whoever gets t next. A session calls it from Close for every
// token but its frontend one (the worker frees that), and when it drops
// a backend connection.
func (l *Loop) Release(t eventloop.Token, fd int) {
	l.check("Release")
	l.w.release(t, fd)
}

// Rebind points t, a live token of another session or owner, at s: a
// pooled backend connection lent to a session. A frontend token cannot
// move (it carries the connection's accounting): that is ErrFrontToken.
func (l *Loop) Rebind(t eventloop.Token, s ProxySession) error {
	l.check("Rebind")
	return l.w.rebind(t, entry{s: s})
}

// RebindOwner is [Loop.Rebind] for a [TokenOwner]: a backend connection
// going back to its pool.
func (l *Loop) RebindOwner(t eventloop.Token, o TokenOwner) error {
	l.check("RebindOwner")
	return l.w.rebind(t, entry{o: o})
}

// Notify delivers readiness r for t now, as if the poller had reported
// it: for sockets that are not descriptors (an HTTP/2 stream), whose
// owner learns of data from another session.
func (l *Loop) Notify(t eventloop.Token, r eventloop.Ready) {
	l.check("Notify")
	l.w.event(t, r)
}

// Defer drives s, whose frontend token is t, once more at the end of the
// current batch, after its events, timers and posted work: for work worth
// doing once per batch rather than once per event (an HTTP/2 connection
// writing in one system call the frames all its streams produced). The
// session keeps its own flag if it must not be deferred twice.
func (l *Loop) Defer(t eventloop.Token, s ProxySession) {
	l.check("Defer")
	l.w.deferred = append(l.w.deferred, deferredDrive{t, s})
}

// CloseSession closes s now: for a session that owns others (an HTTP/2
// connection and the sessions of its streams).
func (l *Loop) CloseSession(s ProxySession) {
	l.check("CloseSession")
	l.w.closeSafely(s)
}

// Wake drives s, whose frontend token is t, once more, on the loop: for
// work a session handed off the loop (a TLS handshake on a pool
// goroutine) to report its end. It is safe from any goroutine and does
// nothing if s has closed by then or the worker has stopped.
func (l *Loop) Wake(t eventloop.Token, s ProxySession) {
	l.w.loop.Post(func() {
		e := l.w.tokens.Ptr(int(t))
		if e == nil || e.closed || e.s != s {
			return
		}
		l.w.drive(s)
	})
}

// Post runs f on the loop between two batches of events. It is safe from
// any goroutine; it reports ErrStopped when the worker has stopped (f
// will not run).
func (l *Loop) Post(f func()) error {
	if l.w.loop.Post(f) != nil {
		return ErrStopped
	}
	return nil
}

// Local returns the worker's value for key, creating it with init the
// first time: per-worker state a protocol shares between its sessions
// (pools, scratch buffers, per-cluster settings), reached without locks
// because only the worker's loop touches it.
func (l *Loop) Local(key any, init func() any) any {
	l.check("Local")
	w := l.w
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

// OnClusterRemoved calls f on the loop each time [Worker.RemoveCluster]
// removes a cluster, after the removal: per-cluster settings kept in
// [Loop.Local] state go with their cluster.
func (l *Loop) OnClusterRemoved(f func(cluster string)) {
	l.check("OnClusterRemoved")
	l.w.clusterRemoved = append(l.w.clusterRemoved, f)
}

// OnBackendRemoved calls f on the loop each time [Worker.RemoveBackend]
// removes a backend, after the removal: idle connections to it are
// closed rather than left to their idle timeout.
func (l *Loop) OnBackendRemoved(f func(b *backend.Backend)) {
	l.check("OnBackendRemoved")
	l.w.backendRemoved = append(l.w.backendRemoved, f)
}

// OnTokenShortage calls f on the loop when the worker has paused accept
// because the tokens a new session needs are all held: f should give back
// up to need tokens its owner holds without need (an idle pooled
// connection closes early). Clients wait in the listen backlog meanwhile,
// and accept resumes once tokens are free.
func (l *Loop) OnTokenShortage(f func(need int)) {
	l.check("OnTokenShortage")
	l.w.tokenShortage = append(l.w.tokenShortage, f)
}

// Replace puts next in old's place on old's frontend token: a session
// that hands its connection to another protocol's session (a router
// that decided, an upgrade). The connection's accounting stays; old is
// not closed, and next must have the same FrontendToken.
func (l *Loop) Replace(old, next ProxySession) error {
	l.check("Replace")
	t := old.FrontendToken()
	e := l.w.tokens.Ptr(int(t))
	switch {
	case e == nil || e.closed || e.s != old:
		return ErrNoToken
	case next.FrontendToken() != t:
		return ErrFrontToken
	}
	e.s = next
	return nil
}

// Disown ends s's place on this worker without calling its Close: its
// frontend descriptor fd is deregistered but stays open, its frontend
// token and connection accounting are freed, and s releases its other
// tokens itself. With [Worker.Adopt] it moves a connection to another
// worker, which counts it from then on.
func (l *Loop) Disown(s ProxySession, fd int) error {
	l.check("Disown")
	t := s.FrontendToken()
	e := l.w.tokens.Ptr(int(t))
	if e == nil || e.closed || e.s != s {
		return ErrNoToken
	}
	l.w.loop.Poller().Deregister(fd)
	l.w.forget(t)
	return nil
}
