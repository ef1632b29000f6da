package backend

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// FNV-1a 64 parameters, from the FNV specification.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Key hashes s into a key for Cluster.PickKey. The result depends only on
// the bytes of s: it is the same in every worker, every process and after
// a restart, unlike hash/maphash, whose seed is random, so every worker of
// every proxy instance sends a given client or session to the same
// backend. It does not allocate.
//
// It is FNV-1a 64 followed by the MurmurHash3 64-bit finalizer: FNV alone
// is fast but leaves similar strings ("key-1", "key-2") with similar high
// bits, and the finalizer spreads every input bit over the whole word.
// Key is not a cryptographic hash; keys chosen by a hostile client can be
// made to collide, which can only concentrate that client's own traffic.
func Key(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// KeyBytes is Key for a byte slice: KeyBytes(b) == Key(string(b)).
func KeyBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// mix is the MurmurHash3 fmix64 finalizer, a bijection in which each input
// bit affects every output bit. The hashing pickers pass keys through it
// once more, so that a caller who uses raw integers (user IDs 1, 2, 3) as
// keys still gets them spread over the whole ring or table.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9a62ac9ca53
	h ^= h >> 33
	return h
}

// Salts that derive independent hashes from one; any odd constants with
// mixed bits would do: the 64-bit golden ratio and a rotation of it.
const (
	saltSkip  = 0x9e3779b97f4a7c15
	saltProbe = 0x7f4a7c159e3779b9
)

// sortedByID sets dst to the backends of src ordered by ID, reusing dst's
// array. The hashing pickers build from this order rather than the order
// of addition, so that their tables depend only on the set of backends:
// two processes that added the same backends in different orders still
// agree on where each key goes.
func sortedByID(dst, src []*Backend) []*Backend {
	clear(dst[:cap(dst)])
	dst = append(dst[:0], src...)
	slices.SortFunc(dst, func(a, b *Backend) int { return strings.Compare(a.ID, b.ID) })
	return dst
}

// rendezvous returns the candidate with the highest weighted rendezvous
// (HRW) score for h, the last resort of the hashing pickers when their
// table or ring yields no candidate quickly. It is stable for a given key
// and candidate set, and a candidate leaving moves only its own keys.
func rendezvous(cs *Candidates, h uint64) *Backend {
	var (
		best      *Backend
		bestScore float64
	)
	for _, b := range cs.list {
		// u is uniform in (0, 1]; w / -ln(u) picks each candidate with
		// probability proportional to its weight.
		u := (float64(mix(h^b.keyHash)>>11) + 1) / (1 << 53)
		score := float64(b.weight) / -math.Log(u)
		if best == nil || score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// MaglevTableSize is the number of slots of a Maglev lookup table. It must
// be prime, so that every backend's probe sequence visits every slot. The
// Maglev paper uses 65537 and advises at least 100 slots per backend for a
// spread within about 1%. A table holds 4 bytes per slot (256 KiB), per
// cluster and per worker, built at the first pick after a change. A
// backend whose weighted share is under one slot (a weight below 1/65537
// of the cluster's total) gets none, and is reached only when the backends
// that own slots are not candidates.
const MaglevTableSize = 65537

// maglevProbes bounds how many further slots a Maglev pick tries when the
// key's own backend is not a candidate before it settles for rendezvous
// hashing among the candidates. When a tenth of the table belongs to
// candidates, 64 probes miss with probability 0.9^64, about 0.1%.
const maglevProbes = 64

// maglevPicker is Google's Maglev consistent hashing (Eisenbud et al.,
// NSDI 2016): each backend has a permutation of the table's slots, given
// by an offset and a skip derived from its ID, and the backends take turns
// claiming their next free slot until the table is full. Every backend
// ends up with nearly the same number of slots (a backend of twice the
// weight takes twice the slots), and a change of the backend set moves few
// slots between the backends that stay.
//
// Building a table takes a few milliseconds whatever the number of
// backends (BenchmarkHashBuild); it happens at the first pick after a
// change, on the worker's loop.
type maglevPicker struct {
	members []*Backend // the cluster's backends, by ID.
	table   []uint32   // slot -> index in members; empty until built.
	stale   bool       // members changed since the table was built.

	// Build scratch, kept to rebuild without allocating.
	pos, skip []uint64
	credit    []int64
}

func (m *maglevPicker) Reset(backends []*Backend) {
	m.members = sortedByID(m.members, backends)
	m.stale = true
}

// build fills the table. It runs at the first pick after a change rather
// than in Reset, so that a configuration adding many backends one by one
// pays for one build, not one per backend.
func (m *maglevPicker) build() {
	m.stale = false
	n := len(m.members)
	if n == 0 {
		m.table = m.table[:0]
		return
	}
	const size = MaglevTableSize
	const free = math.MaxUint32
	m.table = slices.Grow(m.table[:0], size)[:size]
	for i := range m.table {
		m.table[i] = free
	}
	m.pos = slices.Grow(m.pos[:0], n)[:n]
	m.skip = slices.Grow(m.skip[:0], n)[:n]
	m.credit = slices.Grow(m.credit[:0], n)[:n]
	var total int64
	for i, b := range m.members {
		m.pos[i] = b.keyHash % size
		m.skip[i] = mix(b.keyHash^saltSkip)%(size-1) + 1
		m.credit[i] = 0
		total += b.weight
	}
	// Each round, every backend earns credit in proportion to its weight
	// and claims one slot per average weight of credit (credit is scaled
	// by n to stay in integers). Equal weights give the paper's one claim
	// per turn; a backend of twice the average claims two slots a turn,
	// one of half the average every other turn. About n slots go per
	// round, so the table fills in about size/n rounds however uneven the
	// weights, and the heaviest backend, at or above the average, claims
	// every round, so it does fill.
	scale := int64(n)
	for filled := 0; ; {
		for i, b := range m.members {
			m.credit[i] += b.weight * scale
			for ; m.credit[i] >= total; m.credit[i] -= total {
				p := m.pos[i]
				for m.table[p] != free {
					p += m.skip[i]
					if p >= size {
						p -= size
					}
				}
				m.table[p] = uint32(i)
				m.pos[i] = p
				if filled++; filled == size {
					return
				}
			}
		}
	}
}

// Pick without a key hashes a random one, so that the load follows the
// table's shares.
func (m *maglevPicker) Pick(cs *Candidates) *Backend {
	return m.PickKey(cs, cs.Rand().Uint64())
}

// PickKey returns the backend of the key's slot. When that backend is not
// a candidate (down, sick, tried, or a backup while primaries are up), it
// probes further slots along a step derived from the key, so each key has
// its own stable sequence of alternatives: a retry moves to the next one,
// and the keys of a backend that is down spread over all the others
// instead of piling onto one neighbour.
func (m *maglevPicker) PickKey(cs *Candidates, key uint64) *Backend {
	if m.stale {
		m.build()
	}
	if len(m.table) == 0 {
		return nil
	}
	const size = MaglevTableSize
	h := mix(key)
	slot := h % size
	if b := m.members[m.table[slot]]; cs.Contains(b) {
		return b
	}
	step := mix(h^saltProbe)%(size-1) + 1
	for range maglevProbes {
		slot += step
		if slot >= size {
			slot -= size
		}
		if b := m.members[m.table[slot]]; cs.Contains(b) {
			return b
		}
	}
	return rendezvous(cs, h)
}

// RingHashVNodes is the number of points a backend of average weight has on
// a RingHash ring; a backend's count is proportional to its weight, and at
// least 1. A backend's share of the ring then deviates from its weighted
// share by about 1/sqrt(1024), 3%, one standard deviation: with 10 equal
// backends and 100,000 keys, shares measured within ±6% of the mean for the
// IDs b0…b9, and within ±9% over five naming schemes. 512 points reach
// ±10%; 160, a common choice elsewhere, ±25%. Points cost 8 bytes each,
// per cluster and per worker (80 KiB for 10 backends), and are built at
// the first pick after a change. Maglev spreads keys more evenly (±2%).
const RingHashVNodes = 1024

// DefaultLoadFactor is RingHash's bound on a backend's load relative to
// its weighted share, the c of consistent hashing with bounded loads: a
// key stays on its backend until that backend has 25% more active
// connections than its share. A lower factor balances more tightly and
// sends more keys away from their own backend; a higher one the reverse.
const DefaultLoadFactor = 1.25

// RingHashBounded returns the ring hash policy with load factor factor:
// a backend already at ceil(factor × (A+1) × w / W) active connections,
// where A is the candidates' active connections, W their total weight and
// w the backend's weight, is skipped and the key moves clockwise to the
// next backend below its bound. A factor of 0, a negative one, NaN or +Inf
// disables the bound (plain consistent hashing); factors between 0 and 1
// are raised to 1, the tightest bound. RingHashBounded(DefaultLoadFactor)
// is RingHash.
func RingHashBounded(factor float64) Policy {
	switch {
	case factor <= 0 || math.IsNaN(factor) || math.IsInf(factor, 1):
		factor = 0
	case factor < 1:
		factor = 1
	}
	if factor == DefaultLoadFactor {
		return RingHash
	}
	return ringHashPolicy{factor: factor}
}

// ringHashPolicy is RingHash with another load factor.
type ringHashPolicy struct{ factor float64 }

func (p ringHashPolicy) NewPicker() Picker { return &ringPicker{factor: p.factor} }

// String gives the name ParsePolicy knows followed by the factor, so logs
// tell the variants apart.
func (p ringHashPolicy) String() string {
	if p.factor == 0 {
		return "ringhash(unbounded)"
	}
	return "ringhash(" + strconv.FormatFloat(p.factor, 'g', -1, 64) + ")"
}

// ringPicker is consistent hashing on a ring (Karger et al.) with bounded
// loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
// Bounded Loads", SODA 2018): each backend owns points on a ring of 32-bit
// positions, a key goes to the owner of the first point at or after its
// position, and a backend over its load bound passes the key on clockwise.
//
// A point is one uint64: its position in the high half, its owner's index
// in members in the low half. Sorting the points sorts the ring, with
// equal positions ordered by owner, and a plain sort of integers keeps the
// build of a large ring short: the event loop waits for it.
type ringPicker struct {
	factor  float64    // load bound; 0 for none.
	members []*Backend // the cluster's backends, by ID.
	ring    []uint64   // sorted points: position<<32 | owner.
	stale   bool       // members changed since the ring was built.
}

func (r *ringPicker) Reset(backends []*Backend) {
	r.members = sortedByID(r.members, backends)
	r.stale = true
}

// build places the points. Like Maglev's, it runs at the first pick after
// a change. A backend's points depend only on its ID, so a change of the
// set moves only the keys of the points added or removed.
func (r *ringPicker) build() {
	r.stale = false
	r.ring = r.ring[:0]
	n := len(r.members)
	if n == 0 {
		return
	}
	var total int64
	for _, b := range r.members {
		total += b.weight
	}
	for i, b := range r.members {
		k := int(math.Round(RingHashVNodes * float64(b.weight) * float64(n) / float64(total)))
		for j := range max(k, 1) {
			pos := mix(b.keyHash+uint64(j+1)*saltSkip) >> 32
			r.ring = append(r.ring, pos<<32|uint64(i))
		}
	}
	sortByPosition(r.ring)
}

// sortByPosition sorts ring points by position with a stable radix sort on
// the high 32 bits, four passes of one byte. The points were appended in
// owner order, so equal positions stay ordered by owner, as a full sort
// would leave them; a comparison sort of 100,000 points took several
// times longer.
func sortByPosition(ring []uint64) {
	a, buf := ring, make([]uint64, len(ring))
	for shift := 32; shift < 64; shift += 8 {
		var at [256]int
		for _, p := range a {
			at[byte(p>>shift)]++
		}
		sum := 0
		for d, c := range at {
			at[d], sum = sum, sum+c
		}
		for _, p := range a {
			d := byte(p >> shift)
			buf[at[d]] = p
			at[d]++
		}
		a, buf = buf, a
	}
	// After an even number of passes the result is back in ring.
}

// Pick without a key hashes a random one: with the load bound, that is a
// weighted random choice that steers clear of overloaded backends.
func (r *ringPicker) Pick(cs *Candidates) *Backend {
	return r.PickKey(cs, cs.Rand().Uint64())
}

// PickKey walks the ring clockwise from the key's hash to the first point
// whose owner is a candidate below its load bound. The bound's capacities
// add up to factor × (A+1) > A, so some candidate is always below it and
// one turn of the ring, which passes every backend, finds it.
func (r *ringPicker) PickKey(cs *Candidates, key uint64) *Backend {
	if r.stale {
		r.build()
	}
	n := len(r.ring)
	if n == 0 {
		return nil
	}
	h := mix(key)
	i, _ := slices.BinarySearch(r.ring, h>>32<<32) // The first point at or after h.
	var bound float64                              // factor × (A+1): the capacities' sum.
	if r.factor > 0 {
		var active int64
		for _, b := range cs.list {
			active += int64(b.active)
		}
		bound = r.factor * float64(active+1)
	}
	var last *Backend
	for range n {
		if i == n {
			i = 0
		}
		b := r.members[uint32(r.ring[i])]
		i++
		if b == last {
			continue // Adjacent points of one backend: judged already.
		}
		last = b
		if !cs.Contains(b) {
			continue
		}
		// Multiplying before dividing keeps integral capacities exact, so
		// that a backend exactly at its bound is not let through.
		if r.factor > 0 && float64(b.active) >= math.Ceil(bound*float64(b.weight)/float64(cs.total)) {
			continue
		}
		return b
	}
	return rendezvous(cs, h) // Only if rounding defeated the bound.
}
