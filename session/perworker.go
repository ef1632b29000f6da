package session

import "sync"

// PerWorker keeps one value per worker for something several workers
// share, a listener for instance: its counters, written by each worker's
// loop without contention, and summed by whoever reads them (Stats, a
// metrics scrape) from any goroutine. The zero value is ready.
type PerWorker[T any] struct {
	mu  sync.Mutex
	all []*T
}

type perWorkerKey[T any] struct{ p *PerWorker[T] }

// Get returns the value of lp's worker, made by make the first time.
// Loop only; keep what it returns rather than calling it per request.
func (p *PerWorker[T]) Get(lp *Loop, make func() *T) *T {
	return lp.Local(perWorkerKey[T]{p}, func() any {
		v := make()
		p.mu.Lock()
		p.all = append(p.all, v)
		p.mu.Unlock()
		return v
	}).(*T)
}

// Each calls f with every worker's value, from any goroutine: what f
// reads there must be safe to read while the workers write (atomic
// counters, metrics.Histogram).
func (p *PerWorker[T]) Each(f func(*T)) {
	p.mu.Lock()
	all := p.all
	p.mu.Unlock()
	for _, v := range all {
		f(v)
	}
}
