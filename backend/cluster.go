package backend

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
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
	// of two choices, keyless picks of the hashing policies, back-off
	// jitter, Candidates.Rand for user pickers). Nil means seeds from the runtime's
	// random generator. Tests set a seeded generator for repeatable runs;
	// it is only read when a cluster is created, on the loop's goroutine.
	Rand *rand.Rand
	// OnStateChange, if set, is called on the loop's goroutine once for each
	// transition of a backend: up false when it goes Down, up true when it
	// comes back Up. It is where the worker logs, updates metrics or tells
	// the main process. It must not add or remove backends of the cluster
	// being picked from.
	OnStateChange func(cluster string, b *Backend, up bool)
	// RoundRobinOffset rotates the order in which candidates are handed
	// to the policy, and so where round robin starts among backends of
	// equal standing and where least connections breaks its first ties.
	// Each worker of a proxy keeps its own copy of the clusters; giving
	// worker i the offset i sends the workers' first requests to different
	// backends instead of all to the first one. Hashing policies do not
	// depend on it. Default 0; negative values count from the end.
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
// existing cluster is not an error: it returns the existing cluster with
// its backends, installing p if it differs from the current policy, so that
// replaying a configuration (as Sōzu's AddCluster does) is idempotent. It
// fails only on an empty id, a nil policy or one whose NewPicker returns
// nil.
func (cs *Clusters) AddCluster(id string, p Policy) (*Cluster, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: empty cluster id", ErrInvalid)
	}
	c, exists := cs.clusters[id]
	if exists && samePolicy(c.policy, p) {
		return c, nil
	}
	if p == nil {
		return nil, fmt.Errorf("%w: nil policy for cluster %q", ErrInvalid, id)
	}
	picker := p.NewPicker()
	if picker == nil {
		return nil, fmt.Errorf("%w: policy %v for cluster %q", ErrInvalid, p, id)
	}
	if !exists {
		c = &Cluster{
			ID:       id,
			cs:       cs,
			byID:     make(map[string]*Backend),
			bySticky: make(map[string]*Backend),
			rng:      newRand(cs.cfg.Rand),
		}
		c.cands.c = c
		cs.clusters[id] = c
	}
	c.policy = p
	c.picker = picker
	c.keyPicker, _ = picker.(KeyPicker)
	c.picker.Reset(c.backends)
	c.gen++ // A new cluster starts at 1, so 0 can mean "never looked".
	return c, nil
}

// samePolicy reports whether a and b are equal policies. A Policy whose
// dynamic type is not comparable (it holds a slice or a map) is never
// equal to anything, since == on it would panic: AddCluster then merely
// reinstalls it.
func samePolicy(a, b Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Type() == vb.Type() && va.Comparable() && vb.Comparable() && a == b
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
		c.removed.add(b.counters)
		b.status = Removed
		b.trial = false
		c.backends[i] = nil
	}
	c.backends = c.backends[:0]
	clear(c.byID)
	clear(c.bySticky)
	c.backendsChanged()
	return nil
}

// Cluster returns the cluster id, or nil when it does not exist. Routing
// resolves the cluster once per request and then picks from it.
func (cs *Clusters) Cluster(id string) *Cluster { return cs.clusters[id] }

// All returns the clusters sorted by ID: a copy, for admin output and
// metrics, not for the data path.
func (cs *Clusters) All() []*Cluster {
	out := make([]*Cluster, 0, len(cs.clusters))
	for _, c := range cs.clusters {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Cluster) int { return strings.Compare(a.ID, b.ID) })
	return out
}

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
	nb.keyHash = Key(nb.ID)
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
	c.backendsChanged()
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
	c.removed.add(b.counters)
	b.status = Removed
	b.trial = false
	c.backendsChanged()
	return nil
}

// Cluster is a named set of backends with a load-balancing policy, the
// target a routing rule points to. It belongs to its registry's loop.
type Cluster struct {
	// ID names the cluster (Sōzu's cluster_id); routes refer to it.
	ID string

	cs        *Clusters
	policy    Policy
	picker    Picker
	keyPicker KeyPicker  // picker, when it maps keys; nil otherwise.
	backends  []*Backend // in the order they were added.
	byID      map[string]*Backend
	bySticky  map[string]*Backend
	rng       *rand.Rand
	gen       uint64
	removed   Counters // totals of the backends removed so far.
	answered  Counters // the proxy's own answers to the cluster's requests.

	// tiers are Pick's scratch lists, one per tier, reused so that picking
	// does not allocate; cands is the view handed to the picker.
	tiers [numTiers][]*Backend
	cands Candidates
}

// Policy returns the cluster's load-balancing policy, as last given to
// Clusters.AddCluster.
func (c *Cluster) Policy() Policy { return c.policy }

// Generation returns a number that changes whenever the cluster changes
// in a way that can make an earlier answer stale: a backend added or
// removed (including by RemoveCluster), a health-check verdict that
// changed (Backend.SetHealthy), or a new policy (Clusters.AddCluster). A
// session or user code that caches something derived from the cluster,
// such as a chosen backend per client or a rendering of the backend list,
// keeps the generation beside it and recomputes when it differs. It starts
// at 1 and only grows; it is never 0.
//
// It does not change when a backend goes Down or comes back Up through
// its connect outcomes: that happens on the data path, often, and Pick
// already accounts for it. Config.OnStateChange reports those.
func (c *Cluster) Generation() uint64 { return c.gen }

// Counters returns the cluster's lifetime statistics: the sum of its
// backends' Counters plus the totals its removed backends had when they
// were removed, so that reconfiguration does not make the cluster's
// figures drop. Reports that sessions still make on a removed *Backend
// (bytes of a connection that outlived the removal, say) go to that
// backend's own Counters only: counting them here too would need the
// cluster to keep every removed backend, and a backend removed and added
// back with the same ID would then be counted twice.
func (c *Cluster) Counters() Counters {
	total := c.removed
	total.add(c.answered)
	for _, b := range c.backends {
		total.add(b.counters)
	}
	return total
}

// Answered records a response the proxy made itself to a request for the
// cluster (no backend available, a timeout, a backend's broken
// response): its status and the exchange's duration. It counts in the
// cluster's Responses and Duration, not in any backend's.
func (c *Cluster) Answered(status int, total time.Duration) {
	c.answered.countStatus(status)
	c.answered.Duration.Observe(total)
}

// Backends returns the cluster's backends in the order they were added. The
// slice is a copy, so the caller may keep or modify it; it is meant for
// admin output and tests, not for the data path.
func (c *Cluster) Backends() []*Backend { return slices.Clone(c.backends) }

// Len returns the number of backends in the cluster.
func (c *Cluster) Len() int { return len(c.backends) }

// Backend returns the backend id of the cluster, or nil.
func (c *Cluster) Backend(id string) *Backend { return c.byID[id] }

// backendsChanged tells the picker about a new backend set, so that stale
// scores do not skew the new rotation and tables follow the set, and sizes
// Pick's scratch lists so that picking never grows them.
func (c *Cluster) backendsChanged() {
	n := len(c.backends)
	for t := range c.tiers {
		if cap(c.tiers[t]) < n {
			c.tiers[t] = make([]*Backend, 0, n+n/2)
		} else {
			// Drop pointers to removed backends so they can be collected.
			clear(c.tiers[t][:cap(c.tiers[t])])
		}
	}
	c.cands.list = nil
	c.cands.tried = nil
	c.picker.Reset(c.backends)
	c.gen++
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

// tierAt returns the tier b belongs to at now, sickness and tries aside:
// the available tier of its kind, or the fail-open one. A backend is a
// candidate of the fail-open tiers only when no backend is available, so
// each backend needs only its best tier.
func (b *Backend) tierAt(now time.Time) tier {
	switch {
	case b.Backup && b.Available(now):
		return tierBackup
	case b.Backup:
		return tierBackupAny
	case b.Available(now):
		return tierPrimary
	default:
		return tierPrimaryAny
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
// It does not allocate, except when a hashing policy builds its table at
// the first pick after a change of the backend set.
func (c *Cluster) Pick(now time.Time, tried []*Backend) (*Backend, error) {
	cands := c.candidates(now, tried)
	if cands == nil {
		return nil, ErrNoBackend
	}
	return c.checked(cands, c.picker.Pick(cands)), nil
}

// candidates fills c.cands with the first non-empty tier and returns it,
// or returns nil when every backend is sick or tried.
func (c *Cluster) candidates(now time.Time, tried []*Backend) *Candidates {
	n := len(c.backends)
	if n == 0 {
		return nil
	}
	var weight [numTiers]int64
	for t := range c.tiers {
		c.tiers[t] = c.tiers[t][:0]
	}
	off := c.cs.cfg.RoundRobinOffset % n
	if off < 0 {
		off += n
	}
	for i := range n {
		j := i + off
		if j >= n {
			j -= n
		}
		b := c.backends[j]
		if b.sick || wasTried(tried, b) {
			continue
		}
		t := b.tierAt(now)
		c.tiers[t] = append(c.tiers[t], b)
		weight[t] += b.weight
	}
	for t := range numTiers {
		if len(c.tiers[t]) > 0 {
			c.cands.list = c.tiers[t]
			c.cands.total = weight[t]
			c.cands.tier = t
			c.cands.now = now
			c.cands.tried = tried
			return &c.cands
		}
	}
	return nil
}

// checked returns b when it is one of cands, and otherwise a weighted
// random candidate, so that a faulty user Picker degrades balancing
// instead of crashing the worker or sending a request to a removed backend.
func (c *Cluster) checked(cands *Candidates, b *Backend) *Backend {
	if !cands.Contains(b) {
		b = cands.weightedRandom(cands.total, nil)
	}
	// Let go of the request's tried list: the slice belongs to the session.
	cands.tried = nil
	return b
}

// PickKey is Pick for a request that carries a key, such as Key of the
// client address, a header or a cookie: under a key-mapping policy (Maglev,
// RingHash, or a user Picker that is a KeyPicker) equal keys go to the same
// backend for as long as it is a candidate, and a retry with the first
// choice in tried moves to a stable second choice. Other policies ignore
// the key. It allocates only as Pick does.
func (c *Cluster) PickKey(now time.Time, key uint64, tried []*Backend) (*Backend, error) {
	cands := c.candidates(now, tried)
	if cands == nil {
		return nil, ErrNoBackend
	}
	var b *Backend
	if c.keyPicker != nil {
		b = c.keyPicker.PickKey(cands, key)
	} else {
		b = c.picker.Pick(cands)
	}
	return c.checked(cands, b), nil
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
