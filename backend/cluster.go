package backend

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Errors returned by this package. Callers test them with errors.Is; the
// returned errors may wrap them with the offending name.
var (
	// ErrNoBackend means Pick has nothing to offer: the cluster is empty or
	// every backend was already tried for this request. The session answers
	// 503 (HTTP) or closes the client (TCP). It is returned unwrapped, so
	// the hot path never allocates.
	ErrNoBackend = errors.New("backend: no backend available")
	// ErrUnknownCluster means the named cluster does not exist in this
	// worker's registry.
	ErrUnknownCluster = errors.New("backend: unknown cluster")
	// ErrUnknownBackend means the named backend does not exist in the
	// cluster.
	ErrUnknownBackend = errors.New("backend: unknown backend")
	// ErrDuplicate means a backend with the same ID or sticky ID already
	// exists in the cluster. Two backends behind one name would make
	// removal and sticky sessions ambiguous, so the add is refused.
	ErrDuplicate = errors.New("backend: duplicate")
	// ErrInvalid means a configuration value is out of range: an empty ID,
	// an invalid address, a bad weight or an unknown policy.
	ErrInvalid = errors.New("backend: invalid configuration")
)

// Defaults of Config, used when a field is zero or negative.
const (
	// DefaultMaxFailures is the number of consecutive failed connects that
	// takes a backend Down: one failure may be a fluke, three are a trend.
	DefaultMaxFailures = 3
	// DefaultBackoffBase is the first back-off of a backend that went Down.
	DefaultBackoffBase = time.Second
	// DefaultBackoffMax caps the back-off of a backend that keeps failing
	// its trials, so that it is retried at least about once a minute.
	DefaultBackoffMax = time.Minute
)

// Config holds the failure-detection settings and hooks shared by all the
// clusters of a registry. The zero Config is valid and gives the defaults.
type Config struct {
	// MaxFailures is the number of consecutive failed connects after which
	// an Up backend goes Down. Zero or negative means DefaultMaxFailures (3).
	MaxFailures int
	// BackoffBase is the delay before the first trial of a backend that
	// went Down; it doubles after each failed trial. Zero or negative means
	// DefaultBackoffBase (1s).
	BackoffBase time.Duration
	// BackoffMax caps the back-off. Zero or negative means
	// DefaultBackoffMax (60s); a value below BackoffBase is raised to it.
	// Each delay, capped or not, is then jittered by ±10%.
	BackoffMax time.Duration
	// Rand seeds the random source of each cluster (weighted random, power
	// of two choices, back-off jitter). Nil means seeds from the runtime's
	// random generator. Tests set a seeded generator for repeatable runs;
	// it is only read when a cluster is created, on the loop's goroutine.
	Rand *rand.Rand
	// OnStateChange, if set, is called on the loop's goroutine once for each
	// transition of a backend: up false when it goes Down, up true when it
	// comes back Up. It is where the worker logs, updates metrics or tells
	// the main process. It must not add or remove backends of the cluster
	// being picked from.
	OnStateChange func(cluster string, b *Backend, up bool)
	// RoundRobinOffset rotates where round robin starts among backends
	// of equal standing. Each worker of a proxy keeps its own copy of the
	// clusters; giving worker i the offset i sends the workers' first
	// requests to different backends instead of all to the first one.
	// Default 0.
	RoundRobinOffset int
}

// defaultConfig governs backends that no Clusters created.
var defaultConfig = Config{}.withDefaults()

// withDefaults returns c with every unset field replaced by its default.
func (c Config) withDefaults() Config {
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	return c
}

// Clusters is one worker's registry of clusters, the load-balancing half of
// its proxy state. It is not safe for concurrent use: it belongs to the
// worker's event loop, and configuration commands reach it through the
// loop's command queue.
type Clusters struct {
	cfg      Config
	clusters map[string]*Cluster
}

// NewClusters returns an empty registry governed by cfg.
func NewClusters(cfg Config) *Clusters {
	return &Clusters{
		cfg:      cfg.withDefaults(),
		clusters: make(map[string]*Cluster),
	}
}

// AddCluster creates the cluster id with policy p and returns it. Adding an
// existing cluster is not an error: it updates the policy and returns the
// existing cluster with its backends, so that replaying a configuration (as
// Sōzu's AddCluster does) is idempotent. It fails only on an empty id or an
// unknown policy.
func (cs *Clusters) AddCluster(id string, p Policy) (*Cluster, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty cluster id", ErrInvalid)
	}
	if !p.valid() {
		return nil, fmt.Errorf("%w: policy %d for cluster %q", ErrInvalid, uint8(p), id)
	}
	if c, ok := cs.clusters[id]; ok {
		if c.Policy != p {
			c.Policy = p
			c.resetSchedule()
		}
		return c, nil
	}
	c := &Cluster{
		ID:       id,
		Policy:   p,
		cs:       cs,
		byID:     make(map[string]*Backend),
		bySticky: make(map[string]*Backend),
		rng:      newRand(cs.cfg.Rand),
	}
	cs.clusters[id] = c
	return c, nil
}

// newRand returns a PCG generator seeded from seed, or randomly when seed
// is nil.
func newRand(seed *rand.Rand) *rand.Rand {
	if seed != nil {
		return rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// RemoveCluster removes the cluster id and marks all its backends Removed.
// Sessions holding those backends keep working and may still report on
// them.
func (cs *Clusters) RemoveCluster(id string) error {
	c, ok := cs.clusters[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownCluster, id)
	}
	delete(cs.clusters, id)
	for i, b := range c.backends {
		b.status = Removed
		b.trial = false
		c.backends[i] = nil
	}
	c.backends = c.backends[:0]
	clear(c.byID)
	clear(c.bySticky)
	return nil
}

// Cluster returns the cluster id, or nil when it does not exist. Routing
// resolves the cluster once per request and then picks from it.
func (cs *Clusters) Cluster(id string) *Cluster { return cs.clusters[id] }

// Len returns the number of clusters.
func (cs *Clusters) Len() int { return len(cs.clusters) }

// AddBackend adds a backend to the cluster named cluster and returns the
// *Backend that sessions will hold. Only the configuration fields of b are
// copied; Weight 0 becomes DefaultWeight and an empty StickyID becomes ID.
// It fails on an unknown cluster (ErrUnknownCluster), an ID or sticky ID
// already in the cluster (ErrDuplicate), or an invalid ID, address or
// weight (ErrInvalid).
func (cs *Clusters) AddBackend(cluster string, b Backend) (*Backend, error) {
	c, ok := cs.clusters[cluster]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCluster, cluster)
	}
	switch {
	case b.ID == "":
		return nil, fmt.Errorf("%w: empty backend id in cluster %q", ErrInvalid, cluster)
	case !b.Address.IsValid() || b.Address.Port() == 0:
		return nil, fmt.Errorf("%w: backend %q: address %q needs an IP and a non-zero port", ErrInvalid, b.ID, b.Address)
	case b.Weight < 0 || b.Weight > MaxWeight:
		return nil, fmt.Errorf("%w: backend %q: weight %d outside [0, %d]", ErrInvalid, b.ID, b.Weight, MaxWeight)
	}
	nb := &Backend{
		ID:       b.ID,
		Address:  b.Address,
		Weight:   b.Weight,
		Backup:   b.Backup,
		StickyID: b.StickyID,
		cluster:  c,
	}
	if nb.Weight == 0 {
		nb.Weight = DefaultWeight
	}
	nb.weight = int64(nb.Weight)
	if nb.StickyID == "" {
		nb.StickyID = nb.ID
	}
	if _, dup := c.byID[nb.ID]; dup {
		return nil, fmt.Errorf("%w: backend %q in cluster %q", ErrDuplicate, nb.ID, cluster)
	}
	if other, dup := c.bySticky[nb.StickyID]; dup {
		return nil, fmt.Errorf("%w: sticky id %q of backend %q is used by backend %q in cluster %q",
			ErrDuplicate, nb.StickyID, nb.ID, other.ID, cluster)
	}
	c.backends = append(c.backends, nb)
	c.byID[nb.ID] = nb
	c.bySticky[nb.StickyID] = nb
	c.resetSchedule()
	return nb, nil
}

// RemoveBackend removes the backend id from the cluster named cluster and
// marks it Removed. It is never picked again; sessions holding it keep
// their connections and may still call Released on it. Adding a backend
// with the same ID later creates a new, independent *Backend.
func (cs *Clusters) RemoveBackend(cluster, id string) error {
	c, ok := cs.clusters[cluster]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownCluster, cluster)
	}
	b, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("%w: %q in cluster %q", ErrUnknownBackend, id, cluster)
	}
	i := slices.Index(c.backends, b)
	c.backends = slices.Delete(c.backends, i, i+1) // Zeroes the freed tail slot.
	delete(c.byID, id)
	delete(c.bySticky, b.StickyID)
	b.status = Removed
	b.trial = false
	c.resetSchedule()
	return nil
}

// Cluster is a named set of backends with a load-balancing policy, the
// target a routing rule points to. It belongs to its registry's loop.
type Cluster struct {
	// ID names the cluster (Sōzu's cluster_id); routes refer to it.
	ID string
	// Policy chooses among the candidates of each Pick. Set it through
	// Clusters.AddCluster, which validates it and resets the scheduling
	// state; an invalid value set directly behaves as RoundRobin.
	Policy Policy

	cs       *Clusters
	backends []*Backend // in the order they were added.
	byID     map[string]*Backend
	bySticky map[string]*Backend
	rng      *rand.Rand
	cursor   int // LeastConnections: where the next tie-breaking scan starts.
}

// Backends returns the cluster's backends in the order they were added. The
// slice is a copy, so the caller may keep or modify it; it is meant for
// admin output and tests, not for the data path.
func (c *Cluster) Backends() []*Backend { return slices.Clone(c.backends) }

// Len returns the number of backends in the cluster.
func (c *Cluster) Len() int { return len(c.backends) }

// Backend returns the backend id of the cluster, or nil.
func (c *Cluster) Backend(id string) *Backend { return c.byID[id] }

// resetSchedule forgets the scheduling state after the set of backends or
// the policy changed, so that stale scores do not skew the new rotation.
func (c *Cluster) resetSchedule() {
	for _, b := range c.backends {
		b.current = 0
	}
	c.cursor = 0
}

// tier is one level of Pick's order of preference.
type tier uint8

const (
	tierPrimary    tier = iota // available primaries.
	tierBackup                 // available backups.
	tierPrimaryAny             // fail-open: primaries, back-off ignored.
	tierBackupAny              // fail-open: backups, back-off ignored.
	numTiers
)

// eligible reports whether b is a candidate of tier t. The caller has
// already excluded the tried backends when it needs to.
func eligible(b *Backend, t tier, now time.Time) bool {
	if b.sick {
		return false
	}
	switch t {
	case tierPrimary:
		return !b.Backup && b.Available(now)
	case tierBackup:
		return b.Backup && b.Available(now)
	case tierPrimaryAny:
		return !b.Backup
	default:
		return b.Backup
	}
}

// wasTried reports whether b is in tried. The list holds the few backends a
// request already failed on, so a linear scan is the fastest lookup.
func wasTried(tried []*Backend, b *Backend) bool {
	for _, t := range tried {
		if t == b {
			return true
		}
	}
	return false
}

// Pick chooses the backend for a new connection and returns it; the session
// then calls ConnectStarted on it. tried lists the backends that already
// failed for this request (nil on the first attempt), which are never
// picked again, so that retries go elsewhere.
//
// Candidates are, in order of preference: available primaries; available
// backups; then, failing open, the primaries and then the backups that are
// in back-off, because a connect that may fail beats a certain 503. The
// cluster's Policy chooses within the first non-empty tier. Pick returns
// ErrNoBackend only when the cluster is empty or every backend was tried.
// It does not allocate.
func (c *Cluster) Pick(now time.Time, tried []*Backend) (*Backend, error) {
	var (
		count  [numTiers]int
		weight [numTiers]int64
	)
	for _, b := range c.backends {
		if b.sick || wasTried(tried, b) {
			continue
		}
		avail, all := tierPrimary, tierPrimaryAny
		if b.Backup {
			avail, all = tierBackup, tierBackupAny
		}
		count[all]++
		weight[all] += b.weight
		if b.Available(now) {
			count[avail]++
			weight[avail] += b.weight
		}
	}
	for t := range numTiers {
		if count[t] > 0 {
			return c.pickIn(t, count[t], weight[t], now, tried), nil
		}
	}
	return nil, ErrNoBackend
}

// PickSticky returns the backend whose StickyID is stickyID when it is
// available and not in tried, so that a client keeps hitting the backend
// holding its session; otherwise, including for an empty or unknown
// stickyID, it falls back to Pick. The session then sets the sticky cookie
// to the StickyID of the backend it got. It does not allocate.
func (c *Cluster) PickSticky(now time.Time, stickyID string, tried []*Backend) (*Backend, error) {
	if stickyID != "" {
		if b := c.bySticky[stickyID]; b != nil && b.Available(now) && !wasTried(tried, b) {
			return b, nil
		}
	}
	return c.Pick(now, tried)
}

// pickIn applies the policy to the n candidates of tier t, whose weights
// sum to total. n is at least 1.
func (c *Cluster) pickIn(t tier, n int, total int64, now time.Time, tried []*Backend) *Backend {
	switch c.Policy {
	case Random:
		return c.weightedRandom(t, total, nil, now, tried)
	case LeastConnections:
		return c.leastConnections(t, now, tried)
	case PowerOfTwo:
		return c.powerOfTwo(t, n, total, now, tried)
	default:
		return c.smoothRoundRobin(t, now, tried)
	}
}

// smoothRoundRobin is nginx's smooth weighted round robin over the
// candidates of tier t. Ties go to the earliest added backend.
func (c *Cluster) smoothRoundRobin(t tier, now time.Time, tried []*Backend) *Backend {
	var (
		best  *Backend
		total int64
	)
	n := len(c.backends)
	off := c.cs.cfg.RoundRobinOffset
	for i := range n {
		b := c.backends[(i+off)%n]
		if !eligible(b, t, now) || wasTried(tried, b) {
			continue
		}
		b.current += b.weight
		total += b.weight
		if best == nil || b.current > best.current {
			best = b
		}
	}
	best.current -= total
	return best
}

// weightedRandom draws a candidate of tier t with probability proportional
// to its weight. skip, if not nil, is excluded, and total must then already
// exclude its weight.
func (c *Cluster) weightedRandom(t tier, total int64, skip *Backend, now time.Time, tried []*Backend) *Backend {
	r := c.rng.Int64N(total)
	var last *Backend
	for _, b := range c.backends {
		if b == skip || !eligible(b, t, now) || wasTried(tried, b) {
			continue
		}
		if r < b.weight {
			return b
		}
		r -= b.weight
		last = b
	}
	return last // Unreachable when total matches the candidates.
}

// lessLoaded reports whether a has fewer active connections per unit of
// weight than b, comparing a.active/a.weight with b.active/b.weight by
// cross-multiplication to stay in integers.
func lessLoaded(a, b *Backend) bool {
	return int64(a.active)*b.weight < int64(b.active)*a.weight
}

// leastConnections picks the candidate of tier t with the lowest load. The
// scan starts after the previous pick, and only a strictly lower load
// replaces the best so far, so equally loaded backends take turns.
func (c *Cluster) leastConnections(t tier, now time.Time, tried []*Backend) *Backend {
	n := len(c.backends)
	start := c.cursor
	if start >= n {
		start = 0
	}
	var (
		best *Backend
		at   int
	)
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		b := c.backends[i]
		if !eligible(b, t, now) || wasTried(tried, b) {
			continue
		}
		if best == nil || lessLoaded(b, best) {
			best, at = b, i
		}
	}
	c.cursor = at + 1
	return best
}

// powerOfTwo draws two distinct weighted candidates of tier t and returns
// the less loaded one, the first drawn on a tie.
func (c *Cluster) powerOfTwo(t tier, n int, total int64, now time.Time, tried []*Backend) *Backend {
	first := c.weightedRandom(t, total, nil, now, tried)
	if n < 2 {
		return first
	}
	second := c.weightedRandom(t, total-first.weight, first, now, tried)
	if lessLoaded(second, first) {
		return second
	}
	return first
}
