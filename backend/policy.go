package backend

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Policy is a cluster's load-balancing algorithm: the built-in ones
// (RoundRobin, Random, LeastConnections, PowerOfTwo) or one of your own.
//
// A Policy is a description, not state. A proxy passes the same Policy
// value to every worker, and each worker's Clusters calls NewPicker for
// its own copy of the cluster, possibly at the same moment on different
// goroutines. NewPicker must therefore not modify the Policy, and every
// Picker it returns must own its mutable state (scores, cursors, tables):
// nothing a Picker changes may be shared with another Picker. Policy values
// should be comparable (a struct of plain fields or a pointer), so that
// Clusters.AddCluster can tell a replayed configuration from a change.
type Policy interface {
	// NewPicker returns fresh scheduling state for one cluster. Returning
	// nil makes AddCluster fail with ErrInvalid.
	NewPicker() Picker
	// String names the policy in logs and admin output.
	String() string
}

// Picker is the per-cluster state of a Policy. A cluster calls its Picker
// only from the loop that owns the cluster, so a Picker needs no locks.
type Picker interface {
	// Reset tells the picker the cluster's backend set: once when the
	// picker is installed, then after every backend added or removed. This
	// is where a table is rebuilt, rather than on each Pick. The slice, in
	// the order the backends were added, belongs to the cluster: read it
	// during the call, copy what must be kept, and never modify it.
	//
	// Reset is not called when a backend goes Down or Up or fails its
	// health checks: those changes show in the candidates of every Pick,
	// and a table rebuilt on each flap would move keys needlessly.
	Reset(backends []*Backend)
	// Pick returns one of cands, which is never empty. A result that is
	// not among cands (nil, a tried backend, one from another cluster) is
	// a bug in the picker; the cluster survives it by choosing a weighted
	// random candidate instead. Pick runs for every new connection, so it
	// should not allocate.
	Pick(cands *Candidates) *Backend
}

// KeyPicker is a Picker that maps a key (a client address, a header, a
// cookie, hashed with Key) to a backend, so that equal keys go to the same
// backend. Cluster.PickKey uses PickKey when the cluster's picker has it
// and plain Pick otherwise, so a key costs nothing to policies that ignore
// it.
type KeyPicker interface {
	Picker
	// PickKey returns one of cands for key, as Pick does. key is passed
	// exactly as the caller gave it, not re-hashed.
	PickKey(cands *Candidates, key uint64) *Backend
}

// Candidates is the set a Picker chooses from: the first non-empty tier
// of Cluster.Pick's order (available primaries, available backups, then
// failing open the primaries and the backups in back-off), less the sick
// backends and those already tried for the request. The cluster reuses one
// Candidates for every pick, so a Picker must not keep it, or the slice
// behind At, past the call.
type Candidates struct {
	list  []*Backend // in the cluster's order, rotated by Config.RoundRobinOffset.
	total int64
	tier  tier
	c     *Cluster
	now   time.Time
	tried []*Backend
}

// Len returns the number of candidates, at least 1 during a Pick.
func (cs *Candidates) Len() int { return len(cs.list) }

// At returns the i-th candidate, 0 <= i < Len. The order is the cluster's
// order of addition, starting at Config.RoundRobinOffset, so that the
// workers of a proxy, given different offsets, break ties differently.
func (cs *Candidates) At(i int) *Backend { return cs.list[i] }

// TotalWeight returns the sum of the candidates' weights.
func (cs *Candidates) TotalWeight() int64 { return cs.total }

// Contains reports whether b is one of the candidates. It takes constant
// time in the number of backends, so a hashing picker can probe a table
// with it.
func (cs *Candidates) Contains(b *Backend) bool {
	return b != nil && b.cluster == cs.c && cs.c != nil && b.status != Removed &&
		!b.sick && b.tierAt(cs.now) == cs.tier && !wasTried(cs.tried, b)
}

// Now returns the time of the pick, the loop time the caller passed in.
func (cs *Candidates) Now() time.Time { return cs.now }

// Rand returns the cluster's random source, seeded from Config.Rand, so
// that a randomised picker is repeatable in tests. It belongs to the loop
// like everything else here.
func (cs *Candidates) Rand() *rand.Rand { return cs.c.rng }

// weightedRandom draws a candidate with probability proportional to its
// weight. skip, if not nil, is excluded, and total must then already
// exclude its weight.
func (cs *Candidates) weightedRandom(total int64, skip *Backend) *Backend {
	r := cs.c.rng.Int64N(total)
	var last *Backend
	for _, b := range cs.list {
		if b == skip {
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

// Builtin names the policies this package implements. Its values are
// Policies, and unlike an arbitrary Policy a Builtin round-trips through
// text (MarshalText, UnmarshalText), so a configuration struct can hold
// one directly.
type Builtin uint8

const (
	// RoundRobin is smooth weighted round robin, as in nginx: each pick adds
	// every candidate's weight to its score, takes the highest score and
	// subtracts the candidates' total weight from it. Weights 5:1:1 give
	// a a b a c a a, not a a a a a b c, so no backend gets bursts. It is
	// the default (the zero value) because it is fair and predictable.
	RoundRobin Builtin = iota
	// Random picks a candidate at random with probability proportional to
	// its weight. It needs no shared cursor, so many workers using it do
	// not fall into step with each other.
	Random
	// LeastConnections picks the candidate with the fewest active
	// connections per unit of weight, which suits long or uneven
	// connections. Ties are broken in rotation, so idle backends share new
	// connections instead of the first one taking them all.
	LeastConnections
	// PowerOfTwo draws two distinct candidates at random (weighted) and
	// picks the one with fewer active connections per unit of weight. It
	// avoids hot spots almost as well as LeastConnections while not herding
	// every worker onto the same least-loaded backend.
	PowerOfTwo
	// Maglev maps keys (Cluster.PickKey) to backends with Google's Maglev
	// lookup table: the most even spread of keys, weights honoured, and
	// few keys moved between the remaining backends when one is added or
	// removed. Picks without a key are random, in proportion to weight.
	Maglev
	// RingHash maps keys to backends by consistent hashing on a ring with
	// bounded loads (factor DefaultLoadFactor, see RingHashBounded): a key
	// sticks to its backend unless that backend is well above its share of
	// active connections, when the key spills over to the next one on the
	// ring. Picks without a key are random, steered by the same bound.
	RingHash

	numBuiltins // first invalid value.
)

// builtinNames are the names ParsePolicy accepts and String returns, the
// load-balancing names of the configuration file.
var builtinNames = [numBuiltins]string{
	RoundRobin:       "roundrobin",
	Random:           "random",
	LeastConnections: "leastconn",
	PowerOfTwo:       "p2c",
	Maglev:           "maglev",
	RingHash:         "ringhash",
}

// ParsePolicy turns a configuration name into a Policy: "roundrobin",
// "random", "leastconn", "p2c", "maglev" or "ringhash", in any case. The empty string gives the
// default, RoundRobin, so that an unset option means the default. The
// result is always a Builtin.
func ParsePolicy(s string) (Policy, error) {
	p, err := parseBuiltin(s)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// parseBuiltin is ParsePolicy with the concrete type, for UnmarshalText.
func parseBuiltin(s string) (Builtin, error) {
	if s == "" {
		return RoundRobin, nil
	}
	for p, name := range builtinNames {
		if strings.EqualFold(s, name) {
			return Builtin(p), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown load-balancing policy %q (want %s)", ErrInvalid, s, strings.Join(builtinNames[:], ", "))
}

// String returns the configuration name of the policy, the one ParsePolicy
// accepts.
func (p Builtin) String() string {
	if p.valid() {
		return builtinNames[p]
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes the policy by name so that configuration formats
// (JSON, TOML, flags) show "leastconn" rather than a number.
func (p Builtin) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("%w: policy %d", ErrInvalid, uint8(p))
	}
	return []byte(builtinNames[p]), nil
}

// UnmarshalText decodes a policy name as ParsePolicy does.
func (p *Builtin) UnmarshalText(text []byte) error {
	v, err := parseBuiltin(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// NewPicker returns the policy's per-cluster state, or nil for a value
// that names no policy.
func (p Builtin) NewPicker() Picker {
	switch p {
	case RoundRobin:
		return new(roundRobinPicker)
	case Random:
		return randomPicker{}
	case LeastConnections:
		return new(leastConnPicker)
	case PowerOfTwo:
		return powerOfTwoPicker{}
	case Maglev:
		return new(maglevPicker)
	case RingHash:
		return &ringPicker{factor: DefaultLoadFactor}
	}
	return nil
}

// valid reports whether p is one of the declared policies.
func (p Builtin) valid() bool { return p < numBuiltins }

// roundRobinPicker is nginx's smooth weighted round robin. Its scores live
// in Backend.current: a backend belongs to one cluster of one registry, so
// the field is this cluster's state, and keeping it there spares a lookup
// per candidate.
type roundRobinPicker struct{}

func (*roundRobinPicker) Reset(backends []*Backend) {
	for _, b := range backends {
		b.current = 0
	}
}

// Pick gives ties to the earliest candidate, that is to the earliest added
// backend after the registry's RoundRobinOffset.
func (*roundRobinPicker) Pick(cs *Candidates) *Backend {
	var best *Backend
	for _, b := range cs.list {
		b.current += b.weight
		if best == nil || b.current > best.current {
			best = b
		}
	}
	best.current -= cs.total
	return best
}

// randomPicker is stateless: the randomness is the cluster's.
type randomPicker struct{}

func (randomPicker) Reset([]*Backend) {}

func (randomPicker) Pick(cs *Candidates) *Backend { return cs.weightedRandom(cs.total, nil) }

// leastConnPicker remembers where the next tie-breaking scan starts.
type leastConnPicker struct{ cursor int }

func (p *leastConnPicker) Reset([]*Backend) { p.cursor = 0 }

// Pick scans from just after the previous pick, and only a strictly lower
// load replaces the best so far, so equally loaded backends take turns.
// The cursor counts candidates, so the rotation is exact while the
// candidate set is stable and merely restarts elsewhere when it changes.
func (p *leastConnPicker) Pick(cs *Candidates) *Backend {
	n := len(cs.list)
	start := p.cursor
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
		b := cs.list[i]
		if best == nil || lessLoaded(b, best) {
			best, at = b, i
		}
	}
	p.cursor = at + 1
	return best
}

// powerOfTwoPicker is stateless: the randomness is the cluster's.
type powerOfTwoPicker struct{}

func (powerOfTwoPicker) Reset([]*Backend) {}

// Pick draws two distinct weighted candidates and returns the less loaded
// one, the first drawn on a tie.
func (powerOfTwoPicker) Pick(cs *Candidates) *Backend {
	first := cs.weightedRandom(cs.total, nil)
	if len(cs.list) < 2 {
		return first
	}
	second := cs.weightedRandom(cs.total-first.weight, first)
	if lessLoaded(second, first) {
		return second
	}
	return first
}

// lessLoaded reports whether a has fewer active connections per unit of
// weight than b, comparing a.active/a.weight with b.active/b.weight by
// cross-multiplication to stay in integers.
func lessLoaded(a, b *Backend) bool {
	return int64(a.active)*b.weight < int64(b.active)*a.weight
}
