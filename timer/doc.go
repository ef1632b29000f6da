// Package timer is the timer wheel of an event loop: a hashed timing wheel
// whose keys are tokens (session or socket ids). Each event loop owns one
// Wheel. The loop sleeps in the poller's wait with a timeout taken from
// NextDeadline, then calls Poll(now) until it returns false and dispatches
// every key it returned as a timeout.
//
// # Hashed wheel
//
// Time is counted in ticks since an origin, the clock's time at New. A timer
// due at tick T lives in slot T mod Slots, in an intrusive doubly-linked
// list, and stores T itself: a timer more than one turn away simply stays in
// its slot and is skipped until its turn, so a one-hour timeout on a 4 s
// wheel fires at the right tick without any per-turn bookkeeping. Schedule,
// Cancel and Reset are O(1). Poll advances a cursor tick by tick, moving
// the due timers of each visited slot onto a FIFO expired list and returning
// them one per call; when more than a turn has passed since the last poll,
// it visits each slot once instead. An occupancy bitmap lets Poll and
// NextDeadline skip empty slots 64 at a time, and a per-slot minimum
// deadline lets Poll skip slots holding only later turns without walking
// them.
//
// # Tick
//
// The default tick is 1 ms. Proxy timeouts are seconds, and the poller's
// wait timeout has millisecond resolution, so 1 ms keeps the error bound
// below tight while the work per tick stays tiny; a finer tick would only
// add work. The default 4096 slots make one turn 4.096 s, longer than most
// request timeouts, so slots stay short.
//
// # Guarantees
//
// A timer scheduled with duration d at clock time s is due at tick
// ceil((s+d-origin)/Tick), and never at a tick Poll has already processed.
// Poll(now) returns only timers whose tick is at most
// floor((now-origin)/Tick), so a timer never fires early (never before
// s+d), and it fires at most one tick late relative to when Poll is
// called: a Poll at any time at or after s+d+Tick returns it. Keys come in
// deadline order (in slot order after a gap of more than a turn between
// polls, when they are all overdue anyway). A timer scheduled while the loop drains Poll is due at
// the next tick at the earliest, so draining always ends. A timer that has
// expired but that Poll has not returned yet can still be cancelled or
// reset, which matters when a session closes in the middle of a batch.
//
// NextDeadline may be early, a lower bound the loop re-checks by polling,
// but it is never later than the tick at which the earliest pending timer
// becomes due. It is exact when that timer is due within the current turn
// and near enough to be found among a bounded number of occupied slots;
// otherwise it is a conservative earlier time. Its work is bounded and it
// is cached until the earliest timer changes, so the loop can call it on
// every iteration.
//
// # Handles
//
// Schedule returns a Handle naming a node and its generation. A handle goes
// stale when its timer is returned by Poll or cancelled: the node's
// generation changes, so Cancel, Reset and Pending on a stale handle return
// false and never touch a newer timer that reuses the node. The zero Handle
// is never valid, so owners use it to mean "no timer".
//
// # Ownership and allocation
//
// A Wheel is not safe for concurrent use. It belongs to one event loop,
// the only goroutine that touches it, so it takes no locks. Nodes live in
// one slice linked by int32 indices with an intrusive free list, so once
// the slice has grown to the peak number of timers, Schedule, Cancel,
// Reset, Poll and NextDeadline allocate nothing.
package timer
