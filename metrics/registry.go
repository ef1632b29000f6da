package metrics

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Collector adds its metrics to a set when the set is gathered. The
// proxy's parts implement it: a listener sums its workers' counters, a
// proxy asks each worker's loop for its clusters and backends. Collect
// may be called from any goroutine, and concurrently for different sets.
type Collector interface {
	Collect(ctx context.Context, s *Set) error
}

// CollectorFunc is a function used as a Collector.
type CollectorFunc func(ctx context.Context, s *Set) error

// Collect implements Collector.
func (f CollectorFunc) Collect(ctx context.Context, s *Set) error { return f(ctx, s) }

// Registry is the collectors whose metrics are scraped together. It is an
// [http.Handler] serving them in the Prometheus text format.
type Registry struct {
	mu         sync.Mutex
	collectors []Collector

	// Timeout bounds a scrape: a collector that asks a worker's loop
	// waits at most this long for it. Default 5 s.
	Timeout time.Duration
}

// NewRegistry returns a registry of these collectors.
func NewRegistry(cs ...Collector) *Registry {
	return &Registry{collectors: cs}
}

// Register adds a collector. Safe from any goroutine.
func (r *Registry) Register(c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
}

// Unregister removes a collector registered before.
func (r *Registry) Unregister(c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.collectors {
		if x == c {
			r.collectors = append(r.collectors[:i:i], r.collectors[i+1:]...)
			return
		}
	}
}

// Gather runs every collector into one set. It fails when a collector
// fails (a worker that did not answer in time): a partial set would make
// counters go backwards for whoever computes rates from it.
func (r *Registry) Gather(ctx context.Context) (*Set, error) {
	r.mu.Lock()
	cs := append([]Collector(nil), r.collectors...)
	r.mu.Unlock()
	s := NewSet()
	var errs []error
	for _, c := range cs {
		if err := c.Collect(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.Err(); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// ServeHTTP implements http.Handler: GET (or HEAD) answers the metrics
// in the text format, 503 when they could not be gathered.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	s, err := r.Gather(ctx)
	if err != nil {
		http.Error(w, "metrics: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Write(buf.Bytes())
}
