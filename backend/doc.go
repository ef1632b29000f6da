// Package backend keeps a worker's clusters and backends and decides which
// backend a new connection goes to. It is pure logic, with no sockets and no
// clock of its own: the TCP and HTTP sessions ask a Cluster for a backend
// with Pick or PickSticky, open the connection themselves, and report what
// happened through the Backend's ConnectStarted, ConnectFailed,
// ConnectSucceeded and Released methods. Every method that depends on time
// takes now as an argument, so the event loop passes its cached loop time
// and tests drive a virtual clock.
//
// # Ownership
//
// A Clusters registry, its Cluster values and their Backend values belong
// to one worker's event loop and are touched only on that loop's goroutine.
// Nothing here is safe for concurrent use and nothing locks: each worker
// keeps its own registry, fed by the same configuration commands, exactly
// like every Sōzu worker keeps its own copy of the proxy state.
//
// # Choosing a backend
//
// Pick considers, in this order, the available primaries, then the
// available backups, and when none of those is left it fails open: it picks
// among the primaries (then the backups) that are in back-off anyway,
// because trying a backend that was failing a moment ago beats answering
// 503 for certain. Backends listed in tried, those that already failed for
// the current request, are never picked again, so connect retries move to
// other backends. ErrNoBackend therefore means only that the cluster is
// empty or that every backend was tried.
//
// Within that candidate set the cluster's Policy decides: smooth weighted
// round robin (the nginx algorithm, which spreads a heavy backend's turns
// evenly instead of in bursts), weighted random, least connections
// (fewest active connections per unit of weight, ties rotated), or power
// of two random choices (two weighted random candidates, the less loaded
// one wins). All of them run without allocating.
//
// # Failures and back-off
//
// A backend that fails Config.MaxFailures consecutive connects goes Down.
// It then receives no traffic until its back-off expires, after which it is
// available for a single trial connection. A successful trial, or any
// successful connect, brings it back Up; a failed trial doubles the
// back-off, up to Config.BackoffMax. Every delay carries ±10% jitter drawn
// from the cluster's random source, so the workers of a proxy, which all
// saw the same backend fail, do not all retry it in the same millisecond.
// Config.OnStateChange hears about each Up to Down and Down to Up
// transition exactly once.
//
// # Reconfiguration
//
// Backends and clusters can be added and removed at any time. A removed
// backend is never picked again, but a session that still holds its
// *Backend can keep reporting on it (Released in particular) without
// effect on the live configuration; pointers are never reused or moved.
package backend
