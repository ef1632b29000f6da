// Package eventloop is sluice's readiness core: a [Poller] over epoll
// (Linux) or kqueue (macOS and the BSDs), the [Token], [Ready] and
// [Interest] types it speaks, a [Waker], and the [Loop] that ties them to
// a timer wheel and a queue of posted work.
//
// # Readiness, mio style
//
// Registrations are edge-triggered. An event says that readiness changed;
// it is not repeated while the condition lasts. A session therefore keeps
// its own readiness per socket (interest & events received) and clears a
// bit only when an operation answers "would block". Code that stops
// reading before EAGAIN (a full buffer, backpressure) must remember that
// the socket is still readable: no new edge will come for the bytes that
// are already there. Code that queues bytes from a read path must try to
// write them, or remember the writable bit, for the same reason.
//
// Errors and hang-ups are reported whatever the interest. [ReadClosed]
// means the peer sent FIN: reads return the buffered bytes, then EOF.
// [HangUp] is both directions closed.
//
// # The loop
//
// [Loop.Run] runs on one goroutine, locked to its OS thread by default.
// Each round it waits until an event arrives, the next timer is due (the
// wait's timeout comes from [timer.Wheel.NextDeadline]) or another
// goroutine wakes it; then it dispatches the events to its [Handler],
// fires due timers, runs posted work, and calls [BatchEnder.EndBatch] if
// the handler has it. A panic inside any of these is recovered at
// dispatch and reported through [Handler.Panic]; the rest of the batch is
// still dispatched. [Loop.Stop] ends the loop after the current round;
// work posted before the stop still runs, so callers waiting for a reply
// get one.
//
// Tokens above [MaxToken] belong to the loop. A closed session's token
// may still have an event further down the current batch; free tokens at
// [BatchEnder.EndBatch], not mid-batch, so such an event cannot reach a
// new session that reused the token.
package eventloop
