// Package slab provides Slab, a store of values addressed by small integer
// keys that the store hands out itself.
//
// An event loop registers every socket with the poller under a token and,
// when the poller reports readiness, must get from that token back to the
// session that owns the socket. Slab is that mapping: the key returned by
// Insert is the token, and Get, Ptr and Remove turn it back into the session
// in O(1), with no hashing and no per-operation allocation once the slab has
// warmed up.
//
// # Keys are reused
//
// Removing an entry pushes its key onto an intrusive free list, and the next
// insertion pops it (last in, first out, like Rust's slab crate) before the
// slab grows. Keys therefore stay dense and small, which keeps the backing
// array short and the poller's tokens bounded. The flip side is that a key
// means nothing once removed: an event that arrives for a closed session
// must be checked against the session found under the key, or ignored when
// Get reports false.
//
// # Reserving a key first
//
// A session usually needs its token while it is being built, for instance to
// register its socket. Slab.Vacant reserves a key without a value; the
// session is constructed with Vacant.Key and stored with Vacant.Insert, or
// the key is given back with Vacant.Release if construction fails. Until it
// is filled, a reserved key is invisible to Get, Contains, Len and All, so a
// half-built session is never observed. Deferring Release right after
// reserving is safe, since it does nothing once the key has been filled.
//
// # The limit
//
// New takes a limit on the number of keys in use, counting both occupied
// and reserved ones. It is how a proxy caps its concurrent sessions: at the
// limit, Insert and Vacant return ErrFull instead of growing, and the caller
// refuses the new connection. Memory is allocated lazily and never beyond
// the limit. A limit of 0 means the slab grows as needed.
//
// # Iteration
//
// Slab.All walks the occupied entries in key order. It tolerates removals
// while walking, which is what a periodic sweep for zombie sessions needs.
//
// A Slab is not safe for concurrent use; it belongs to a single event loop.
package slab
