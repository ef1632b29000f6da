// Package session is where sluice becomes a proxy library: the
// [ProxySession] contract (Sōzu's ProxySession trait in Go), the
// [Listener] through which any protocol plugs in, the [Worker] that
// drives sessions on one event loop, and the [Proxy] that runs several
// workers and fans commands out to them.
//
// # The contract
//
// A session is one client connection and everything it owns: its
// frontend socket, its backend sockets, their tokens, timers and
// buffers. The worker maps every token to its session through a slab.
// For each event it calls UpdateReadiness with the token and the
// readiness, then Ready until the session has nothing left to do; a
// session answers Continue, Close, or ConnectBackend. Timers the session
// schedules on [Worker.Timers], keyed by its own tokens, come back
// through Timeout. A panic inside a session closes that session only
// and is counted.
//
// A session gets new tokens (a backend socket) with [Worker.Register]
// and gives them back with [Worker.Release] from its Close. The worker
// frees tokens at the end of the batch of events, so an event still
// queued for a closed session's token is dropped rather than delivered
// to a new session that reused it.
//
// # Limits
//
// MaxConnections pauses accepting (connections wait in the kernel's
// backlog) and resumes below 90 %; MaxConnectionsPerIP closes a
// connection beyond it at once; the buffer pool is bounded; the token
// slab is sized from MaxConnections. A zombie check closes sessions that
// have seen no event for ZombieCheckInterval.
//
// # Commands
//
// Every exported method of [Worker] that is not documented as
// loop-only is a command: it is safe from any goroutine, runs on the loop
// between batches, and returns when applied. Adding or removing a
// listener, cluster or backend never disturbs established sessions. A
// soft stop closes the listeners, then asks each session ShuttingDown
// every 50 ms until all have closed; a hard stop closes everything at
// once.
package session
