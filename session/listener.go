package session

import (
	"errors"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
)

// Listener turns accepted connections into sessions. The reference
// sessions (TCP, HTTP) implement it, and so can an application's own
// protocol: the worker knows nothing of a session's type.
type Listener interface {
	// Protocol is what the listener's sessions speak, for logs.
	Protocol() Protocol
	// NewSession builds the session of an accepted connection, on the
	// loop of the worker that accepted it; the session keeps l. The
	// worker has already registered a.Fd under a.Token (edge-triggered,
	// readable and writable), so the first event may come right after.
	// On error the worker closes the socket and frees the token.
	NewSession(l *Loop, a Accepted) (ProxySession, error)
}

// OverLimitAnswerer is an optional [Listener] ability. A listener whose
// protocol can say "too many connections" (HTTP's 429) gets a connection
// beyond MaxConnectionsPerIP as a session marked OverLimit, to answer
// and close, instead of the silent close other protocols get.
type OverLimitAnswerer interface {
	AnswersOverLimit() bool
}

// Accepted describes a connection a listener accepted.
type Accepted struct {
	// OverLimit: the client is over MaxConnectionsPerIP; the session
	// should answer so and close (see [OverLimitAnswerer]).
	OverLimit bool
	Fd        int             // non-blocking, close-on-exec; the session owns it
	Token     eventloop.Token // the session's frontend token
	Peer      netip.AddrPort  // the client as the kernel saw it
	Local     netip.AddrPort  // the listening address
}

// ListenConfig tunes a listening socket.
type ListenConfig struct {
	// Backlog is the kernel's accept queue length. Default 1024.
	Backlog int
	// ReusePort sets SO_REUSEPORT, so that the workers of a proxy each
	// listen on the same address. Default off for a lone worker; the
	// multi-worker front turns it on.
	ReusePort bool
}

// listenSession is a listener's entry in the token slab.
type listenSession struct {
	w      *Worker
	l      Listener
	fd     int
	token  eventloop.Token
	addr   netip.AddrPort
	active bool
}

// Event accepts until the queue is empty, unless the worker is paused at
// its connection limit; resume retries then.
func (ls *listenSession) Event(eventloop.Token, eventloop.Ready)       { ls.w.accept(ls) }
func (ls *listenSession) Timeout(eventloop.Token, eventloop.TimerName) {}
func (ls *listenSession) Close()                                       { ls.close(ls.w) }

// close deregisters and closes the listening socket; established
// sessions are not touched.
func (ls *listenSession) close(w *Worker) {
	if ls.fd < 0 {
		return
	}
	w.release(ls.token, ls.fd)
	sock := protocol.NewTCPSocket(ls.fd)
	sock.Close()
	ls.fd = -1
}

// accept takes connections until the queue is empty or a limit is hit.
func (w *Worker) accept(ls *listenSession) {
	for ls.active && ls.fd >= 0 && !w.paused && !w.stopping {
		if free := w.tokensFree(); free < w.cfg.MaxTokensPerSession {
			w.shortOfTokens(w.cfg.MaxTokensPerSession - free)
			return
		}
		fd, peer, err := protocol.Accept(ls.fd)
		if errors.Is(err, protocol.ErrWouldBlock) {
			return
		}
		if err != nil {
			// Out of descriptors, most likely. What waits stays in the
			// backlog and raises no new edge: try again shortly. One log
			// line per episode, not one per retry.
			if w.acceptFailing == 0 {
				w.log.Warn("accept failed; retrying every 100ms", "listener", ls.addr, "err", err)
			}
			w.acceptFailing++
			w.pauseAccept()
			w.loop.Timers().Schedule(eventloop.TimerKey{Token: retryToken}, 100*time.Millisecond)
			return
		}
		if w.acceptFailing > 0 {
			w.log.Info("accept works again", "listener", ls.addr, "failed_retries", w.acceptFailing)
			w.acceptFailing = 0
		}
		w.admit(ls.l, ls.addr, fd, peer)
		if w.sessions >= w.cfg.MaxConnections {
			w.pauseAccept()
		}
	}
}

// admit applies the per-IP limit, then has the listener build a session.
// It reports whether a session took the connection; if not, fd is closed.
func (w *Worker) admit(l Listener, local netip.AddrPort, fd int, peer netip.AddrPort) bool {
	ip := peer.Addr()
	over := false
	if lim := w.cfg.MaxConnectionsPerIP; lim > 0 && int(w.perIP[ip]) >= lim {
		w.status.RefusedPerIP++
		if a, ok := l.(OverLimitAnswerer); !ok || !a.AnswersOverLimit() {
			closeFD(fd)
			return false
		}
		over = true
	}
	v, err := w.tokens.Vacant()
	if err != nil {
		w.status.RefusedFull++
		closeFD(fd)
		return false
	}
	t := eventloop.Token(v.Key())
	if err := w.loop.Poller().Register(fd, t, eventloop.InterestBoth); err != nil {
		v.Release()
		closeFD(fd)
		w.status.RefusedNoSession++
		return false
	}
	// The token is reserved; the session may register more tokens while
	// it is built, so it is filled only afterwards.
	s, err := l.NewSession(w.handle, Accepted{Fd: fd, Token: t, Peer: peer, Local: local, OverLimit: over})
	if err != nil || s == nil {
		w.loop.Poller().Deregister(fd)
		v.Release()
		closeFD(fd)
		w.status.RefusedNoSession++
		w.log.Debug("listener refused a session", "listener", local, "err", err)
		return false
	}
	v.Insert(entry{s: s, front: true})
	w.sessions++
	w.status.Accepted++
	if w.cfg.MaxConnectionsPerIP > 0 {
		// Counted only with a limit: an entry per client address and a
		// token's address is memory every connection would pay.
		w.perIP[ip]++
		w.peers[t] = ip
	}
	return true
}

func (w *Worker) pauseAccept() {
	if !w.paused {
		w.paused = true
		if w.acceptFailing == 0 {
			w.log.Info("accept paused", "sessions", w.sessions)
		}
	}
}

// resumeAccept drains every listener's backlog: connections that waited
// there during the pause raised their edge long ago.
func (w *Worker) resumeAccept() {
	w.paused = false
	if w.acceptFailing == 0 {
		w.log.Info("accept resumed", "sessions", w.sessions)
	}
	for _, ls := range w.listeners {
		w.accept(ls)
	}
}

func closeFD(fd int) {
	sock := protocol.NewTCPSocket(fd)
	sock.Close()
}

var _ TokenOwner = (*listenSession)(nil)
