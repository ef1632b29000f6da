package session

import (
	"context"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"golang.org/x/sys/unix"
)

// Commands are what a [Worker] and a [Proxy] both take, so that code
// configures one worker or a whole proxy alike (a discovery source, an
// admin socket, a protocol's per-cluster settings). Each is safe from any
// goroutine, runs on the loop between two batches of events and returns
// when applied (on a Proxy: applied by every worker); none disturbs
// established sessions unless it says so.
type Commands interface {
	AddListener(addr netip.AddrPort, l Listener, cfg ListenConfig) (netip.AddrPort, error)
	AddListenerFD(fd int, l Listener) (netip.AddrPort, error)
	RemoveListener(addr netip.AddrPort) error
	ActivateListener(addr netip.AddrPort) error
	DeactivateListener(addr netip.AddrPort) error
	AddCluster(id string, p backend.Policy) error
	RemoveCluster(id string) error
	AddBackend(cluster string, b backend.Backend) error
	RemoveBackend(cluster, id string) error
	// Exec runs f on the loop (on a Proxy: on every worker's loop, at
	// once) and returns its error (joined, on a Proxy). It is the door
	// for the commands of the layers above, which keep their state on
	// the loop too ([Loop.Local]).
	Exec(f func(l *Loop) error) error
	Status() (Status, error)
	SoftStop(ctx context.Context) error
	HardStop() error
}

var (
	_ Commands = (*Worker)(nil)
	_ Commands = (*Proxy)(nil)
)

// onLoop reports whether the caller runs on the worker's loop.
func (w *Worker) onLoop() bool {
	g := w.loopG.Load()
	return g != 0 && goroutineID() == g
}

// do runs f on the loop and waits for its answer. Called on the loop
// itself (by a hook, or a simulation's world), it runs f at once:
// waiting for the loop there would wait forever.
func (w *Worker) do(f func() error) error {
	if w.onLoop() {
		return f()
	}
	reply := make(chan error, 1)
	if err := w.loop.Post(func() { reply <- f() }); err != nil {
		return ErrStopped
	}
	return <-reply
}

// AddListener opens a listening socket on addr and accepts with l. It
// returns the bound address (the chosen port when addr's port is 0).
func (w *Worker) AddListener(addr netip.AddrPort, l Listener, cfg ListenConfig) (netip.AddrPort, error) {
	var bound netip.AddrPort
	err := w.do(func() error {
		if w.stopping {
			return ErrStopped
		}
		if _, ok := w.listeners[addr]; ok && addr.Port() != 0 {
			return ErrListenerExists
		}
		fd, err := protocol.Listen(addr, protocol.ListenConfig{Backlog: cfg.Backlog, ReusePort: cfg.ReusePort})
		if err != nil {
			return err
		}
		bound, _ = protocol.LocalAddr(fd)
		return w.listenOn(fd, bound, l)
	})
	return bound, err
}

// AddListenerFD accepts with l on a listening socket the process
// inherited (systemd's LISTEN_FDS, see [InheritedListeners], or a
// binary upgrade handing its sockets over), and returns its address.
// The worker owns fd from then on, even on error.
func (w *Worker) AddListenerFD(fd int, l Listener) (netip.AddrPort, error) {
	var bound netip.AddrPort
	ran := false
	err := w.do(func() error {
		ran = true
		var err error
		if bound, err = protocol.AdoptListener(fd); err != nil {
			closeFD(fd)
			return err
		}
		if w.stopping {
			closeFD(fd)
			return ErrStopped
		}
		if _, ok := w.listeners[bound]; ok {
			closeFD(fd)
			return ErrListenerExists
		}
		return w.listenOn(fd, bound, l)
	})
	if !ran {
		closeFD(fd) // the worker had stopped
	}
	return bound, err
}

// listenOn registers a listening socket; on error it closes fd.
func (w *Worker) listenOn(fd int, bound netip.AddrPort, l Listener) error {
	ls := &listenSession{w: w, l: l, fd: fd, addr: bound, active: true}
	v, err := w.tokens.Vacant()
	if err != nil {
		closeFD(fd)
		return ErrTooManySessions
	}
	ls.token = eventloop.Token(v.Key())
	if err := w.loop.Poller().Register(fd, ls.token, eventloop.InterestRead); err != nil {
		v.Release()
		closeFD(fd)
		return err
	}
	v.Insert(entry{o: ls})
	w.listeners[bound] = ls
	w.status.Listeners = len(w.listeners)
	return nil
}

// Adopt makes a session of an established connection that comes from
// elsewhere (another worker, a process upgrade): the connection is
// counted, limited and soft-stopped like one this worker accepted. local
// is the address it reached, for the session. The worker owns fd from
// then on, even on error. From a session, run it on another goroutine: a
// loop must not wait for another loop's command.
func (w *Worker) Adopt(fd int, peer, local netip.AddrPort, l Listener) error {
	ran := false
	err := w.do(func() error {
		ran = true
		if w.stopping {
			closeFD(fd)
			return ErrStopped
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			closeFD(fd)
			return err
		}
		if !w.admit(l, local, fd, peer) {
			return ErrRefused
		}
		return nil
	})
	if !ran {
		closeFD(fd) // the worker had stopped
	}
	return err
}

// RemoveListener closes the listening socket on addr. Sessions it
// accepted go on.
func (w *Worker) RemoveListener(addr netip.AddrPort) error {
	return w.do(func() error {
		ls, ok := w.listeners[addr]
		if !ok {
			return ErrNoSuchListener
		}
		ls.close(w)
		delete(w.listeners, addr)
		return nil
	})
}

// DeactivateListener stops accepting on addr but keeps the socket, so
// connections wait in its backlog until ActivateListener.
func (w *Worker) DeactivateListener(addr netip.AddrPort) error {
	return w.do(func() error {
		ls, ok := w.listeners[addr]
		if !ok {
			return ErrNoSuchListener
		}
		ls.active = false
		return nil
	})
}

// ActivateListener resumes accepting on addr, starting with what waited
// in the backlog.
func (w *Worker) ActivateListener(addr netip.AddrPort) error {
	return w.do(func() error {
		ls, ok := w.listeners[addr]
		if !ok {
			return ErrNoSuchListener
		}
		ls.active = true
		w.accept(ls)
		return nil
	})
}

// Status returns a snapshot of the worker's counters.
//
// Once the worker has stopped, it returns the counters as they were at
// the end of Run, and no error.
func (w *Worker) Status() (Status, error) {
	var st Status
	err := w.do(func() error {
		st = w.snapshot()
		return nil
	})
	if err == ErrStopped && w.running.Load() {
		<-w.done
		return w.final, nil
	}
	return st, err
}

// snapshot reads the counters, on the loop.
func (w *Worker) snapshot() Status {
	st := w.status
	st.Sessions = w.sessions
	st.Tokens = w.tokens.Len()
	st.Listeners = len(w.listeners)
	st.AcceptPaused = w.paused
	st.ShuttingDown = w.stopping
	st.BuffersLent = w.pool.Lent()
	st.BuffersRefused = w.pool.Exhausted()
	st.PipesLent = w.pipes.Lent()
	st.PipesRefused = w.pipes.Refused()
	st.Clusters = w.clusters.Len()
	return st
}

// Exec runs f on the worker's loop and waits for it: the door for
// commands of the layers above (routes, per-cluster settings), which
// keep their state on the loop too.
func (w *Worker) Exec(f func(l *Loop) error) error {
	return w.do(func() error { return f(w.handle) })
}

// SoftStop closes the listeners, then asks every session ShuttingDown
// until all have closed, and stops the worker. It returns when the
// worker is done or ctx ends (the soft stop goes on; HardStop ends it).
// Called on the worker's own loop (a hook, a simulation), it starts the
// stop and returns at once, as every command does there.
func (w *Worker) SoftStop(ctx context.Context) error {
	err := w.do(func() error {
		if w.stopping {
			return nil
		}
		w.stopping = true
		w.closeListeners()
		w.log.Info("soft stop", "sessions", w.sessions)
		w.shutdownRound()
		return nil
	})
	if err != nil && err != ErrStopped {
		return err
	}
	if w.onLoop() {
		return nil // the loop goes on to the stop once this batch ends
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shutdownRound asks each session whether it can end now, and asks again
// shortly for those that cannot.
func (w *Worker) shutdownRound() {
	// The next round is booked first, so that a session panicking in
	// ShuttingDown cannot stall the stop.
	w.loop.Timers().Cancel(w.stopTimer)
	w.stopTimer = w.loop.Timers().Schedule(eventloop.TimerKey{Token: stopToken}, 50*time.Millisecond)
	for _, e := range w.tokens.All() {
		if e.front && !e.closed && e.s.ShuttingDown() == Close {
			w.closeSafely(e.s)
		}
	}
}

// HardStop closes every session and listener at once and stops the
// worker; it returns when the worker is done. Run must have been called.
func (w *Worker) HardStop() error {
	w.loop.Stop() // Run closes everything once the loop returns
	if !w.onLoop() {
		<-w.done
	}
	return nil
}

// AddCluster adds a cluster, or changes the policy of an existing one
// (its backends stay).
func (w *Worker) AddCluster(id string, p backend.Policy) error {
	return w.do(func() error {
		_, err := w.clusters.AddCluster(id, p)
		return err
	})
}

// RemoveCluster removes a cluster, and with it the per-cluster settings
// protocols keep ([Loop.OnClusterRemoved]). Sessions connected to its
// backends go on; new ones routed to it find no backend.
func (w *Worker) RemoveCluster(id string) error {
	return w.do(func() error {
		if err := w.clusters.RemoveCluster(id); err != nil {
			return err
		}
		for _, f := range w.clusterRemoved {
			f(id)
		}
		return nil
	})
}

// AddBackend adds a backend to a cluster. Established sessions are not
// disturbed; new connections may pick it at once.
func (w *Worker) AddBackend(cluster string, b backend.Backend) error {
	return w.do(func() error {
		_, err := w.clusters.AddBackend(cluster, b)
		return err
	})
}

// RemoveBackend removes a backend from its cluster. Sessions already
// connected to it go on until they end; no new connection picks it, and
// the holders of idle connections to it ([Loop.OnBackendRemoved]) close
// them.
func (w *Worker) RemoveBackend(cluster, id string) error {
	return w.do(func() error {
		var b *backend.Backend
		if c := w.clusters.Cluster(cluster); c != nil {
			b = c.Backend(id)
		}
		if err := w.clusters.RemoveBackend(cluster, id); err != nil {
			return err
		}
		for _, f := range w.backendRemoved {
			f(b)
		}
		return nil
	})
}
