// Package session is where sluice becomes a proxy library: the
// [ProxySession] contract (Sōzu's ProxySession trait in Go), the
// [Listener] through which any protocol plugs in, the [Worker] that
// drives sessions on one event loop, and the [Proxy] that runs several
// workers and fans commands out to them. Nothing here is HTTP-shaped:
// routes, hooks and per-cluster HTTP settings live in session/httpproxy.
//
// # Three audiences, three types
//
//   - [Worker] and [Proxy] hold commands only ([Commands]): safe from any
//     goroutine, applied on the loop between two batches of events,
//     answered when applied. Code that configures one worker configures
//     a whole proxy the same way.
//   - [Loop] is what a session may do on its loop: tokens, timers,
//     deferred and woken work, the buffer pool, the clock, the logger,
//     the clusters and per-worker state. Its methods are loop-only (but
//     Wake and Post); in tests, or with SLUICE_CHECKLOOP=1, a call from
//     another goroutine panics and names the method.
//   - The event loop's plumbing (dispatch, timers, panics, end of batch)
//     is unexported.
//
// # The contract
//
// A session is one client connection and everything it owns: its
// frontend socket, its backend sockets, their tokens, timers and
// buffers. The worker maps every token to its session through a slab.
// For each event it calls UpdateReadiness with the token and the
// readiness, then Ready until the session answers Continue or Close.
// Timers the session arms with [Loop.Schedule], keyed by one of its
// tokens and a name of its choosing (an idle and a connect timer on the
// same backend token), come back through Timeout with both, whose Again
// hands over to Ready. A
// panic inside a session closes that session only and is counted.
// Embed [Base] for the methods that have defaults.
//
// A session gets new tokens (a backend socket) with [Loop.Register] and
// gives them back with [Loop.Release] from its Close. The worker frees
// tokens at the end of the batch of events, so an event still queued for
// a closed session's token is dropped rather than delivered to a new
// session that reused it. A token holder that is not a client session
// (a pooled backend connection, a health check) implements the three
// methods of [TokenOwner] instead.
//
// # Limits
//
// MaxConnections pauses accepting (connections wait in the kernel's
// backlog) and resumes below 90 %; MaxConnectionsPerIP closes a
// connection beyond it at once; the buffer pool is bounded; the token
// slab is sized from MaxConnections. A zombie check closes sessions that
// have seen no event for ZombieCheckInterval.
//
// # Stopping
//
// Adding or removing a listener, cluster or backend never disturbs
// established sessions. A soft stop closes the listeners, then asks each
// session ShuttingDown every 50 ms until all have closed; a hard stop
// closes everything at once.
package session
