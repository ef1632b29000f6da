package session

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"sync"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol"
)

// ProxyConfig configures a [Proxy].
type ProxyConfig struct {
	// Workers is the number of workers, each one loop on one goroutine.
	// Default: one per CPU the process may run on.
	Workers int
	// Worker is every worker's configuration. MaxConnections,
	// MaxConnectionsPerIP and the buffer pool are per worker.
	Worker Config
}

// Proxy runs several workers and fans every command out to all of them.
// Each worker has its own listening socket on every listener address
// (SO_REUSEPORT: the kernel spreads connections between them), its own
// sessions, buffers, timers and copy of the clusters, so nothing is
// shared on the data path.
type Proxy struct {
	workers []*Worker
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	started bool
}

// NewProxy creates the workers; Start runs them.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	n := cfg.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Proxy{}
	for i := 0; i < n; i++ {
		wc := cfg.Worker
		wc.Backends.RoundRobinOffset = i // the workers' first picks differ
		w, err := NewWorker(wc)
		if err != nil {
			for _, w := range p.workers {
				w.loop.Close()
			}
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// Workers returns the workers, for per-worker commands and status.
func (p *Proxy) Workers() []*Worker { return p.workers }

// Start runs every worker on its own goroutine.
func (p *Proxy) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return
	}
	p.started = true
	for _, w := range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := w.Run(); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, err)
				p.mu.Unlock()
			}
		}()
	}
}

// Wait blocks until every worker has stopped and returns their errors.
func (p *Proxy) Wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// each runs f for every worker concurrently and joins the errors.
func (p *Proxy) each(f func(w *Worker) error) error {
	errs := make([]error, len(p.workers))
	var wg sync.WaitGroup
	for i, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(w)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// AddListener opens addr on every worker with SO_REUSEPORT (when there
// is more than one) and returns the bound address. With port 0 the
// first worker's port is used by all. If any worker fails, the others
// close theirs again.
func (p *Proxy) AddListener(addr netip.AddrPort, l Listener, cfg ListenConfig) (netip.AddrPort, error) {
	if len(p.workers) > 1 {
		cfg.ReusePort = true
	}
	bound, err := p.workers[0].AddListener(addr, l, cfg)
	if err != nil {
		return bound, err
	}
	for i, w := range p.workers[1:] {
		if _, err := w.AddListener(bound, l, cfg); err != nil {
			for _, done := range p.workers[:i+1] {
				done.RemoveListener(bound)
			}
			return netip.AddrPort{}, err
		}
	}
	return bound, nil
}

// AddListenerFD accepts with l on an inherited listening socket (see
// [Worker.AddListenerFD]): the first worker takes fd, every other one a
// duplicate of it, so the kernel's one queue feeds all the workers. The
// proxy owns fd from then on, even on error.
func (p *Proxy) AddListenerFD(fd int, l Listener) (netip.AddrPort, error) {
	dups := make([]int, 0, len(p.workers)-1)
	for range p.workers[1:] {
		d, err := protocol.Dup(fd)
		if err != nil {
			for _, d := range dups {
				closeFD(d)
			}
			closeFD(fd)
			return netip.AddrPort{}, err
		}
		dups = append(dups, d)
	}
	bound, err := p.workers[0].AddListenerFD(fd, l)
	for i, w := range p.workers[1:] {
		if err != nil {
			closeFD(dups[i])
			continue
		}
		if _, err = w.AddListenerFD(dups[i], l); err != nil {
			for _, done := range p.workers[:i+1] {
				done.RemoveListener(bound)
			}
		}
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	return bound, nil
}

// RemoveListener closes addr on every worker.
func (p *Proxy) RemoveListener(addr netip.AddrPort) error {
	return p.each(func(w *Worker) error { return w.RemoveListener(addr) })
}

// ActivateListener resumes accepting on addr everywhere.
func (p *Proxy) ActivateListener(addr netip.AddrPort) error {
	return p.each(func(w *Worker) error { return w.ActivateListener(addr) })
}

// DeactivateListener stops accepting on addr everywhere.
func (p *Proxy) DeactivateListener(addr netip.AddrPort) error {
	return p.each(func(w *Worker) error { return w.DeactivateListener(addr) })
}

// AddCluster adds or updates a cluster on every worker.
func (p *Proxy) AddCluster(id string, policy backend.Policy) error {
	return p.each(func(w *Worker) error { return w.AddCluster(id, policy) })
}

// RemoveCluster removes a cluster from every worker.
func (p *Proxy) RemoveCluster(id string) error {
	return p.each(func(w *Worker) error { return w.RemoveCluster(id) })
}

// AddBackend adds a backend on every worker.
func (p *Proxy) AddBackend(cluster string, b backend.Backend) error {
	return p.each(func(w *Worker) error { return w.AddBackend(cluster, b) })
}

// RemoveBackend removes a backend from every worker.
func (p *Proxy) RemoveBackend(cluster, id string) error {
	return p.each(func(w *Worker) error { return w.RemoveBackend(cluster, id) })
}

// Exec runs f on every worker's loop at once and joins their errors:
// per-worker state of the layers above (routes, per-cluster settings)
// is set everywhere.
func (p *Proxy) Exec(f func(l *Loop) error) error {
	return p.each(func(w *Worker) error { return w.Exec(f) })
}

// Status sums the workers' counters. AcceptPaused is true when any
// worker is paused; Listeners and Clusters are the first worker's.
func (p *Proxy) Status() (Status, error) {
	var total Status
	var mu sync.Mutex
	err := p.each(func(w *Worker) error {
		st, err := w.Status()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		total.add(st)
		return nil
	})
	if len(p.workers) > 0 {
		if st, err := p.workers[0].Status(); err == nil {
			total.Listeners, total.Clusters = st.Listeners, st.Clusters
		}
	}
	return total, err
}

func (s *Status) add(o Status) {
	s.Sessions += o.Sessions
	s.Tokens += o.Tokens
	s.AcceptPaused = s.AcceptPaused || o.AcceptPaused
	s.Accepted += o.Accepted
	s.Closed += o.Closed
	s.RefusedFull += o.RefusedFull
	s.TokenPauses += o.TokenPauses
	s.RefusedPerIP += o.RefusedPerIP
	s.RefusedNoSession += o.RefusedNoSession
	s.Zombies += o.Zombies
	s.Panics += o.Panics
	s.ShuttingDown = s.ShuttingDown || o.ShuttingDown
	s.BuffersLent += o.BuffersLent
	s.BuffersRefused += o.BuffersRefused
	s.PipesLent += o.PipesLent
	s.PipesRefused += o.PipesRefused
}

// SoftStop soft-stops every worker (see [Worker.SoftStop]) and waits for
// them or for ctx.
func (p *Proxy) SoftStop(ctx context.Context) error {
	return p.each(func(w *Worker) error { return w.SoftStop(ctx) })
}

// HardStop closes everything at once and waits for the workers. On a
// proxy that was never started it releases the workers' loops.
func (p *Proxy) HardStop() error {
	p.mu.Lock()
	started := p.started
	p.started = true // a later Start must not run closed loops
	p.mu.Unlock()
	if !started {
		for _, w := range p.workers {
			w.loop.Close()
		}
		return nil
	}
	return p.each(func(w *Worker) error { return w.HardStop() })
}
