// Package backend keeps a worker's clusters and backends and decides which
// backend a new connection goes to. It is pure logic, with no sockets and no
// clock of its own: the TCP and HTTP sessions ask a [Cluster] for a backend
// with [Cluster.Pick], [Cluster.PickKey] or [Cluster.PickSticky], open the
// connection themselves, and report what happened through the [Backend]'s
// [Backend.ConnectStarted], [Backend.ConnectFailed],
// [Backend.ConnectSucceeded] and [Backend.Released] methods. Every method
// that depends on time takes now as an argument, so the event loop passes
// its cached loop time and tests drive a virtual clock.
//
// # Ownership
//
// A [Clusters] registry, its Cluster values and their Backend values belong
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
// other backends. [ErrNoBackend] therefore means only that the cluster is
// empty or that every backend was tried.
//
// Within that candidate set the cluster's [Policy] decides. The built-in
// policies, values of type [Builtin] that [ParsePolicy] knows by name, are
// smooth weighted round robin ([RoundRobin], the nginx algorithm, which
// spreads a heavy backend's turns evenly instead of in bursts), weighted
// random ([Random]), least connections ([LeastConnections], fewest active
// connections per unit of weight, ties rotated), power of two random
// choices ([PowerOfTwo], two weighted random candidates, the less loaded
// one wins), and two consistent-hashing policies for PickKey: [Maglev],
// Google's lookup table, which spreads keys most evenly, and [RingHash], a
// hash ring whose backends each take at most a bounded share of the active
// connections ([RingHashBounded]). None of them allocates on a pick.
//
// # Policies of your own
//
// A Policy is a factory: every Clusters registry calls [Policy.NewPicker]
// for its own copy of each cluster, so the same Policy value can be given
// to every worker while each worker's [Picker] keeps its own scores,
// cursors or tables. A Picker chooses among [Candidates], the tier Pick
// settled on, and hears through [Picker.Reset] when the backend set
// changes, which is when a table should be rebuilt. A Picker that also
// implements [KeyPicker] receives PickKey's key; [Key] and [KeyBytes] turn
// strings into keys the same way in every process. An answer that is not a
// candidate is replaced by a weighted random candidate, so a faulty picker
// cannot crash the worker.
//
// # Keys
//
// PickKey sends equal keys to the same backend for as long as it is a
// candidate, in every worker and every proxy instance, and a retry with
// the first backend in tried to a stable second choice. When a backend
// joins or leaves, only the keys that must move do, give or take a few
// percent: with 10 backends and 100,000 keys, adding an 11th moved 9.3% of
// the keys (ideally 9.1%) under both hashing policies, and each backend
// received within 2% (Maglev) or 6% (RingHash) of its share. Policies that
// do not hash ignore the key, and the hashing ones hash a random key when
// called through plain Pick.
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
// [Cluster.Generation] changes with every change of the backend set, of a
// health-check verdict or of the policy, for code that caches answers.
//
// # Counters
//
// [Backend.Counters] counts connects, failures and transitions, and the
// requests and bytes that sessions report with [Backend.CountRequest] and
// [Backend.CountBytes]. [Cluster.Counters] adds up its backends and keeps
// the totals of those it lost, so removing a backend does not make a
// cluster's figures go down.
package backend
