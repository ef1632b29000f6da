package session

import (
	"context"
	"sync"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/metrics"
)

// Collect implements metrics.Collector: the worker's sessions, accepts,
// buffers, and its clusters' and backends' counters, read on its loop
// (a command: what the loop owns is read where it is written, so the
// data path counts in plain fields). The loop copies them into a set of
// its own; if ctx ends first, the scrape fails and the copy is dropped.
// A listener's counters are the listener's to collect
// (httpproxy.Listener.Collect).
func (w *Worker) Collect(ctx context.Context, s *metrics.Set) error {
	if w.onLoop() {
		w.collect(s)
		return nil
	}
	reply := make(chan *metrics.Set, 1)
	if err := w.loop.Post(func() {
		own := metrics.NewSet()
		w.collect(own)
		reply <- own
	}); err != nil {
		return ErrStopped
	}
	select {
	case own := <-reply:
		s.Merge(own)
		return nil
	case <-w.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Collect implements metrics.Collector: every worker's (see
// [Worker.Collect]), summed.
func (p *Proxy) Collect(ctx context.Context, s *metrics.Set) error {
	var mu sync.Mutex
	return p.each(func(w *Worker) error {
		own := metrics.NewSet()
		err := w.Collect(ctx, own)
		mu.Lock()
		defer mu.Unlock()
		s.Merge(own)
		return err
	})
}

// collect runs on the loop.
func (w *Worker) collect(s *metrics.Set) {
	st := w.snapshot()
	s.Gauge("sluice_sessions", "Client sessions open.", float64(st.Sessions))
	s.Counter("sluice_sessions_accepted_total", "Client sessions created.", st.Accepted)
	s.Counter("sluice_sessions_closed_total", "Client sessions closed.", st.Closed)
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"no_token", st.RefusedFull}, {"per_ip", st.RefusedPerIP}, {"no_session", st.RefusedNoSession}} {
		s.Counter("sluice_connections_refused_total", "Connections accepted then closed at once, by reason.", r.n, metrics.L("reason", r.reason))
	}
	s.Counter("sluice_sessions_zombies_total", "Sessions closed by the zombie check (no event for too long).", st.Zombies)
	s.Counter("sluice_sessions_panics_total", "Sessions closed because they panicked.", st.Panics)
	paused := 0.0
	if st.AcceptPaused {
		paused = 1
	}
	s.Gauge("sluice_workers_accept_paused", "Workers whose accepts are paused for lack of tokens.", paused)
	s.Gauge("sluice_workers", "Workers (event loops) running.", 1)
	s.Gauge("sluice_buffers_lent", "Buffers lent from the workers' pools.", float64(st.BuffersLent))
	s.Gauge("sluice_buffers_max", "Buffers the workers' pools may lend at once.", float64(w.pool.Max()))
	s.Counter("sluice_buffers_refused_total", "Buffer requests refused: the pool was exhausted.", st.BuffersRefused)
	s.Gauge("sluice_pipes_lent", "Kernel pipes lent to splicing relays.", float64(st.PipesLent))
	s.Counter("sluice_pipes_refused_total", "Bulk transfers copied through a buffer: no kernel pipe to lend.", st.PipesRefused)
	for _, c := range w.clusters.All() {
		collectCluster(s, c)
	}
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// collectCluster adds a cluster's counters, and its backends'.
func collectCluster(s *metrics.Set, c *backend.Cluster) {
	id := metrics.L("cluster", c.ID)
	counters(s, "sluice_cluster_", c.Counters(), id)
	for _, b := range c.Backends() {
		be := metrics.L("backend", b.ID)
		counters(s, "sluice_backend_", b.Counters(), id, be)
		s.Gauge("sluice_backend_active_connections", "Connections to the backend: connects in progress and established.", float64(b.Active()), id, be)
		state := b.State()
		for _, k := range [...]string{"up", "down", "unhealthy"} {
			v := 0.0
			if k == state {
				v = 1
			}
			s.Gauge("sluice_backend_state", "Workers that see the backend in this state: up, down (connects failed, in back-off) or unhealthy (failed its health checks).", v, id, be, metrics.L("state", k))
		}
	}
}

func counters(s *metrics.Set, prefix string, c backend.Counters, labels ...metrics.Label) {
	s.Counter(prefix+"connections_total", "Backend connect attempts.", c.Connections, labels...)
	s.Counter(prefix+"connect_failures_total", "Backend connects that failed.", c.Failures, labels...)
	s.Counter(prefix+"downs_total", "Times a backend went down and into back-off.", c.Downs, labels...)
	s.Counter(prefix+"requests_total", "Requests sent to backends.", c.Requests, labels...)
	for i, n := range c.Responses {
		s.Counter(prefix+"responses_total", "Responses by status class: the backends' and, for a cluster, the proxy's own answers.", n, append(labels, metrics.L("class", classes[i]))...)
	}
	s.Counter(prefix+"bytes_in_total", "Bytes sent to backends (requests, uploads).", c.BytesIn, labels...)
	s.Counter(prefix+"bytes_out_total", "Bytes received from backends (responses).", c.BytesOut, labels...)
	s.Histogram(prefix+"connect_seconds", "Successful backend connects.", c.Connect, labels...)
	s.Histogram(prefix+"first_byte_seconds", "Time from sending a request to its response's first byte.", c.FirstByte, labels...)
	s.Histogram(prefix+"request_duration_seconds", "Requests from their first byte to the end of the response.", c.Duration, labels...)
}

var (
	_ metrics.Collector = (*Worker)(nil)
	_ metrics.Collector = (*Proxy)(nil)
)
