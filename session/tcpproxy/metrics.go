package tcpproxy

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/session"
)

// onWorker is a listener's counters on one worker: only that worker's
// loop writes them (atomic adds on memory no other worker touches);
// Stats and scrapes read them from any goroutine and sum the workers'.
type onWorker struct {
	stats    Stats
	sessions atomic.Int64  // client connections open
	accepted atomic.Uint64 // client connections accepted
	duration metrics.Histogram
	onFail   func(*backend.Backend, error) // dialFailed, made once
}

// onWorker is the listener's part on lp's worker, made the first time.
func (l *Listener) onWorker(lp *session.Loop) *onWorker {
	return l.workers.Get(lp, func() *onWorker {
		w := &onWorker{}
		w.onFail = w.dialFailed
		return w
	})
}

// dialFailed counts a failed backend connect.
func (w *onWorker) dialFailed(_ *backend.Backend, err error) {
	if errors.Is(err, session.ErrDialTimeout) {
		w.stats.connectTimedOut.Add(1)
	} else {
		w.stats.connectFailed.Add(1)
	}
}

// Stats returns the listener's counters, summed over its workers.
func (l *Listener) Stats() StatsSnapshot {
	var total StatsSnapshot
	l.workers.Each(func(w *onWorker) { total.add(w.stats.Snapshot()) })
	return total
}

// Collect implements metrics.Collector: the listener's counters, summed
// over its workers, labelled listener=Config.Name. The cluster's and
// backends' metrics are the proxy's ([session.Proxy.Collect]).
func (l *Listener) Collect(_ context.Context, s *metrics.Set) error {
	name := metrics.L("listener", l.cfg.Name)
	st := l.Stats()
	var duration metrics.HistogramValue
	var open, accepted int64
	l.workers.Each(func(w *onWorker) {
		duration.Add(w.duration.Load())
		open += w.sessions.Load()
		accepted += int64(w.accepted.Load())
	})
	s.Counter("sluice_listener_connections_total", "Client connections accepted.", uint64(accepted), name)
	s.Gauge("sluice_listener_active_connections", "Client connections open.", float64(open), name)
	s.Counter("sluice_listener_bytes_in_total", "Bytes sent to backends: requests, uploads, tunnels' client side.", st.BytesIn, name)
	s.Counter("sluice_listener_bytes_out_total", "Bytes received from backends: responses, tunnels' backend side.", st.BytesOut, name)
	s.Counter("sluice_listener_proxy_protocol_rejected_total", "Connections without the expected PROXY protocol header.", st.ProxyRejected, name)
	s.Histogram("sluice_tcp_session_duration_seconds", "TCP sessions from accept to close.", duration, name)
	s.Counter("sluice_tcp_connect_errors_total", "Backend connect attempts that failed, by reason.", st.ConnectFailed, name, metrics.L("reason", "failed"))
	s.Counter("sluice_tcp_connect_errors_total", "", st.ConnectTimedOut, name, metrics.L("reason", "timeout"))
	s.Counter("sluice_tcp_no_backend_total", "Sessions closed because no backend could be reached.", st.NoBackend, name)
	s.Counter("sluice_tcp_timeouts_total", "Sessions closed by a timeout, by side.", st.FrontTimeouts, name, metrics.L("side", "client"))
	s.Counter("sluice_tcp_timeouts_total", "", st.BackTimeouts, name, metrics.L("side", "backend"))
	s.Counter("sluice_tcp_proxy_protocol_timeouts_total", "Sessions whose PROXY protocol header did not come in time.", st.ProxyTimedOut, name)
	s.Counter("sluice_tcp_resets_total", "Sessions ended by a reset or a socket error.", st.Reset, name)
	for _, r := range []struct {
		result string
		n      uint64
	}{{"routed", st.Routed}, {"rejected", st.RouteRejected}, {"timeout", st.RouteTimedOut}} {
		s.Counter("sluice_tcp_routes_total", "Connections the routing stage decided on, by result.", r.n, name, metrics.L("result", r.result))
	}
	return nil
}

func (s *StatsSnapshot) add(o StatsSnapshot) {
	s.Sessions += o.Sessions
	s.ProxyRejected += o.ProxyRejected
	s.ProxyTimedOut += o.ProxyTimedOut
	s.ConnectFailed += o.ConnectFailed
	s.ConnectTimedOut += o.ConnectTimedOut
	s.NoBackend += o.NoBackend
	s.FrontTimeouts += o.FrontTimeouts
	s.BackTimeouts += o.BackTimeouts
	s.Reset += o.Reset
	s.Routed += o.Routed
	s.RouteRejected += o.RouteRejected
	s.RouteTimedOut += o.RouteTimedOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
}

var _ metrics.Collector = (*Listener)(nil)
