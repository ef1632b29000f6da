// Package protocol holds what every protocol state machine of sluice
// shares: the non-blocking [Socket] and its [SocketResult], and the
// helpers that open listening and connecting TCP sockets for an event
// loop.
//
// A socket here is a raw non-blocking descriptor, not a [net.Conn]: the
// Go runtime's poller never sees it. The owning loop registers it with
// an [eventloop.Poller] (edge-triggered) and calls Read and Write when
// the poller says they may progress. Each call drains as far as it can
// and says why it stopped, so the session knows whether to keep its
// readiness bit ([Continue]) or wait for the next edge ([WouldBlock]).
//
// [eventloop.Poller]: https://pkg.go.dev/github.com/sluiceproxy/sluice/eventloop#Poller
package protocol
