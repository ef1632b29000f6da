package httpproxy

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
)

// onWorker is a listener's part on one worker: its routes, and its
// counters. Only that worker's loop writes the counters (atomic adds on
// memory no other worker touches); Stats and scrapes read them from any
// goroutine and sum the workers'.
type onWorker struct {
	l      *Listener
	st     *workerState
	routes *router.Router
	stats  Stats
	tls    tlsStats

	sessions atomic.Int64                      // client connections open
	accepted atomic.Uint64                     // client connections accepted
	classes  [len(statusClasses)]atomic.Uint64 // responses the clients got, by status class
	duration metrics.Histogram                 // requests, from the head's first byte to the response's end
}

var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// onWorker is the listener's part on lp's worker, made the first time.
func (l *Listener) onWorker(lp *session.Loop) *onWorker {
	return l.workers.Get(lp, func() *onWorker { return &onWorker{l: l, st: stateOf(lp), routes: router.New()} })
}

// Stats returns the listener's counters, summed over its workers.
func (l *Listener) Stats() StatsSnapshot {
	total := StatsSnapshot{Answers: map[int]uint64{}}
	l.workers.Each(func(w *onWorker) { total.add(w.stats.Snapshot()) })
	return total
}

// TLSStats returns the listener's handshake counters (zero for a
// cleartext listener), summed over its workers.
func (l *Listener) TLSStats() TLSStats {
	var total TLSStats
	l.workers.Each(func(w *onWorker) { total.add(w.tls.snapshot()) })
	return total
}

// exchangeCounted counts a finished exchange: its status (what the
// client got) and its duration.
func (w *onWorker) exchangeCounted(status int, d time.Duration) {
	if c := status/100 - 1; c >= 0 && c < len(w.classes) {
		w.classes[c].Add(1)
	}
	w.duration.Observe(d)
}

// Collect implements metrics.Collector: the listener's counters, summed
// over its workers, labelled listener=Config.Name. It reads counters
// only, never a worker's loop, so it answers even when a loop is busy.
// The clusters' and backends' metrics are the proxy's
// ([session.Proxy.Collect]).
func (l *Listener) Collect(_ context.Context, s *metrics.Set) error {
	name := metrics.L("listener", l.cfg.Name)
	st, ts := l.Stats(), l.TLSStats()
	var classes [len(statusClasses)]uint64
	var duration, handshakes metrics.HistogramValue
	var open, accepted int64
	l.workers.Each(func(w *onWorker) {
		for i := range classes {
			classes[i] += w.classes[i].Load()
		}
		duration.Add(w.duration.Load())
		handshakes.Add(w.tls.duration.Load())
		open += w.sessions.Load()
		accepted += int64(w.accepted.Load())
	})
	s.Counter("sluice_listener_connections_total", "Client connections accepted.", uint64(accepted), name)
	s.Gauge("sluice_listener_active_connections", "Client connections open.", float64(open), name)
	s.Counter("sluice_http_requests_total", "HTTP request heads received from clients.", st.Requests, name)
	for i, c := range classes {
		s.Counter("sluice_http_responses_total", "HTTP responses sent to clients, by status class (the backends' and the proxy's own).", c, name, metrics.L("class", statusClasses[i]))
	}
	s.Histogram("sluice_http_request_duration_seconds", "HTTP requests from their first byte to the end of the response.", duration, name)
	for status, n := range st.Answers {
		s.Counter("sluice_http_answers_total", "Responses the proxy made itself (no backend, timeouts, bad requests, hooks' answers), by status.", n, name, metrics.L("code", strconv.Itoa(status)))
	}
	s.Counter("sluice_http_backend_connections_total", "Backend connections opened for requests.", st.NewBackend, name)
	s.Counter("sluice_http_backend_reused_total", "Requests sent on a pooled backend connection.", st.ReusedBackend, name)
	s.Counter("sluice_http_retries_total", "Requests retried on a fresh connection after a pooled one failed.", st.Retried, name)
	s.Counter("sluice_http_backend_errors_total", "Backend connections that broke mid-exchange, or answered malformed responses.", st.BackendReset, name, metrics.L("reason", "reset"))
	s.Counter("sluice_http_backend_errors_total", "", st.BackendBadResponse, name, metrics.L("reason", "bad_response"))
	s.Counter("sluice_http_client_resets_total", "Client connections that broke mid-exchange.", st.ClientReset, name)
	s.Counter("sluice_http_tunnels_total", "Connections switched to a tunnel by a 101 response (WebSocket).", st.Tunnels, name)
	s.Counter("sluice_listener_bytes_in_total", "Bytes sent to backends: requests, uploads, tunnels' client side.", st.BytesIn, name)
	s.Counter("sluice_listener_bytes_out_total", "Bytes received from backends: responses, tunnels' backend side.", st.BytesOut, name)
	s.Counter("sluice_listener_proxy_protocol_rejected_total", "Connections without the expected PROXY protocol header.", st.ProxyRejected, name)
	s.Counter("sluice_http2_connections_total", "HTTP/2 client connections.", st.H2Conns, name)
	s.Counter("sluice_http2_streams_total", "HTTP/2 request streams, counted when their connection ends.", st.H2Streams, name)
	s.Counter("sluice_http2_floods_total", "HTTP/2 connections ended for a flood (rapid reset, CONTINUATION, PING, SETTINGS...).", st.H2Floods, name)
	s.Counter("sluice_http2_backend_streams_total", "Requests sent to HTTP/2 backends.", st.H2BackendStreams, name)
	s.Counter("sluice_http_hook_answers_total", "Requests a hook answered.", st.HookAnswers, name)
	s.Counter("sluice_http_hook_panics_total", "Hooks that panicked.", st.HookPanics, name)
	s.Counter("sluice_http_hook_timeouts_total", "Suspended requests whose deadline passed.", st.HookTimeouts, name)
	if l.tlsConfig != nil {
		full := ts.Handshakes - ts.Resumed
		s.Counter("sluice_tls_handshakes_total", "TLS handshakes, by result.", full, name, metrics.L("result", "full"))
		s.Counter("sluice_tls_handshakes_total", "", ts.Resumed, name, metrics.L("result", "resumed"))
		for _, f := range []struct {
			reason string
			n      uint64
		}{{"not_tls", ts.NotTLS}, {"pool_full", ts.PoolFull}, {"timeout", ts.Timeout}, {"client_closed", ts.ClientClosed}, {"refused", ts.Refused}} {
			s.Counter("sluice_tls_handshake_failures_total", "TLS handshakes that failed, by reason.", f.n, name, metrics.L("reason", f.reason))
		}
		s.Histogram("sluice_tls_handshake_seconds", "Completed TLS handshakes, from the ClientHello's first byte.", handshakes, name)
	}
	return nil
}

func (s *StatsSnapshot) add(o StatsSnapshot) {
	s.Requests += o.Requests
	s.Responses += o.Responses
	for k, v := range o.Answers {
		s.Answers[k] += v
	}
	s.ReusedBackend += o.ReusedBackend
	s.NewBackend += o.NewBackend
	s.Retried += o.Retried
	s.Tunnels += o.Tunnels
	s.BackendReset += o.BackendReset
	s.BackendBadResponse += o.BackendBadResponse
	s.ClientReset += o.ClientReset
	s.ProxyRejected += o.ProxyRejected
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.H2Conns += o.H2Conns
	s.H2Streams += o.H2Streams
	s.H2Floods += o.H2Floods
	s.NotHTTP += o.NotHTTP
	s.H2BackendStreams += o.H2BackendStreams
	s.HookAnswers += o.HookAnswers
	s.HookPanics += o.HookPanics
	s.HookTimeouts += o.HookTimeouts
}

var _ metrics.Collector = (*Listener)(nil)

// countExchange counts a finished exchange where its listener, cluster
// and backend keep their metrics: every request that ended, answered or
// aborted, in the listener's duration; a backend's response in the
// backend's counters, the proxy's own answer in the cluster's.
func (s *cycle) countExchange(status int, answered bool, now time.Time) {
	x := s.x
	d := now.Sub(x.start)
	s.lw.exchangeCounted(status, d)
	switch {
	case !answered && s.backend != nil && !x.respAt.IsZero():
		s.backend.Served(status, x.respAt.Sub(x.connected), d)
	case answered && x.clusterID != "":
		c := s.cluster // resolved when the request was routed
		if c == nil || c.ID != x.clusterID {
			c = s.lp.Clusters().Cluster(x.clusterID) // answered before that
		}
		if c != nil {
			c.Answered(status, d)
		}
	}
}
