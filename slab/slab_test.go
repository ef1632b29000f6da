package slab

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkInvariants verifies the internal bookkeeping: every slot is in exactly
// one state, the free list links exactly the free slots without cycles, free
// slots hold the zero value, and the counters match the slots.
func checkInvariants[T comparable](t *testing.T, s *Slab[T]) {
	t.Helper()
	var zero T
	occupied, reserved, free := 0, 0, 0
	for i := int32(0); i < s.n; i++ {
		e := s.slot(i)
		switch e.state {
		case stateOccupied:
			occupied++
		case stateReserved:
			reserved++
			require.Equal(t, zero, e.val, "reserved slot %d holds a value", i)
		case stateFree:
			free++
			require.Equal(t, zero, e.val, "free slot %d was not cleared", i)
		default:
			t.Fatalf("slot %d has invalid state %d", i, e.state)
		}
	}
	require.Equal(t, occupied, s.Len())
	require.Equal(t, reserved, s.Reserved())

	seen := make(map[int32]bool)
	for h := s.freeHead; h != 0; h = s.slot(h - 1).aux {
		k := h - 1
		require.Less(t, k, s.n, "free list points past the used slots")
		require.GreaterOrEqual(t, k, int32(0))
		require.False(t, seen[k], "free list has a cycle at %d", k)
		seen[k] = true
		require.Equal(t, stateFree, s.slot(k).state, "free list links non-free slot %d", k)
	}
	require.Len(t, seen, free, "free list does not link every free slot")

	require.LessOrEqual(t, int(s.n), s.Cap())
	if s.Limit() > 0 {
		require.LessOrEqual(t, s.Cap(), s.Limit())
		require.LessOrEqual(t, s.Len()+s.Reserved(), s.Limit())
	}
}

func collect[T any](s *Slab[T]) (keys []int, vals []T) {
	for k, v := range s.All() {
		keys = append(keys, k)
		vals = append(vals, v)
	}
	return keys, vals
}

func TestInsertGetRemove(t *testing.T) {
	s := New[string](0)
	k0, err := s.Insert("a")
	require.NoError(t, err)
	k1, err := s.Insert("b")
	require.NoError(t, err)
	assert.Equal(t, 0, k0, "keys start at 0")
	assert.Equal(t, 1, k1)

	v, ok := s.Get(k0)
	assert.True(t, ok)
	assert.Equal(t, "a", v)
	assert.True(t, s.Contains(k1))
	assert.Equal(t, 2, s.Len())

	v, ok = s.Remove(k0)
	assert.True(t, ok)
	assert.Equal(t, "a", v)
	assert.False(t, s.Contains(k0))
	_, ok = s.Get(k0)
	assert.False(t, ok)
	assert.Equal(t, 1, s.Len())

	v, ok = s.Remove(k0)
	assert.False(t, ok, "double remove")
	assert.Equal(t, "", v)
	checkInvariants(t, s)
}

func TestRemoveClearsValue(t *testing.T) {
	type big struct{ p *int }
	s := New[big](0)
	x := 1
	k, err := s.Insert(big{&x})
	require.NoError(t, err)
	s.Remove(k)
	assert.Nil(t, s.slot(int32(k)).val.p, "removed slot still references its value")
}

func TestKeyReuseLIFO(t *testing.T) {
	s := New[int](0)
	for i := range 5 {
		k, err := s.Insert(i)
		require.NoError(t, err)
		require.Equal(t, i, k)
	}
	s.Remove(1)
	s.Remove(3)
	s.Remove(2)

	for _, want := range []int{2, 3, 1, 5} {
		k, err := s.Insert(100)
		require.NoError(t, err)
		assert.Equal(t, want, k)
	}
	checkInvariants(t, s)
}

func TestVacant(t *testing.T) {
	s := New[string](0)
	v, err := s.Vacant()
	require.NoError(t, err)
	assert.Equal(t, 0, v.Key())
	assert.Equal(t, 1, s.Reserved())
	assert.Equal(t, 0, s.Len())

	_, ok := s.Get(v.Key())
	assert.False(t, ok, "reserved key must not be visible")
	assert.False(t, s.Contains(v.Key()))
	assert.Nil(t, s.Ptr(v.Key()))
	assert.False(t, s.Replace(v.Key(), "x"))
	keys, _ := collect(s)
	assert.Empty(t, keys)

	k, err := s.Insert("other")
	require.NoError(t, err)
	assert.Equal(t, 1, k, "reserved key is not handed out again")

	v.Insert("mine")
	got, ok := s.Get(v.Key())
	assert.True(t, ok)
	assert.Equal(t, "mine", got)
	assert.Equal(t, 0, s.Reserved())
	assert.Equal(t, 2, s.Len())

	v.Release() // No-op once filled.
	assert.True(t, s.Contains(v.Key()))
	assert.Equal(t, 2, s.Len())
	checkInvariants(t, s)
}

func TestVacantRelease(t *testing.T) {
	s := New[int](0)
	v, err := s.Vacant()
	require.NoError(t, err)
	v.Release()
	assert.Equal(t, 0, s.Reserved())
	assert.Equal(t, 0, s.Len())
	v.Release() // Idempotent.
	assert.Equal(t, 0, s.Reserved())

	k, err := s.Insert(7)
	require.NoError(t, err)
	assert.Equal(t, v.Key(), k, "released key is reused")
	assert.Panics(t, func() { v.Insert(1) }, "released reservation")
	v.Release() // Must not free the key that now belongs to someone else.
	assert.True(t, s.Contains(k))
	checkInvariants(t, s)
}

func TestVacantInsertTwicePanics(t *testing.T) {
	s := New[int](0)
	v, err := s.Vacant()
	require.NoError(t, err)
	v.Insert(1)
	assert.Panics(t, func() { v.Insert(2) })
	got, _ := s.Get(v.Key())
	assert.Equal(t, 1, got, "the failed second insert must not overwrite")

	var zero Vacant[int]
	assert.Panics(t, func() { zero.Insert(1) })
	zero.Release()
}

func TestVacantStaleAfterReuse(t *testing.T) {
	s := New[int](0)
	old, err := s.Vacant()
	require.NoError(t, err)
	old.Release()
	fresh, err := s.Vacant()
	require.NoError(t, err)
	require.Equal(t, old.Key(), fresh.Key(), "same key reserved again")

	assert.Panics(t, func() { old.Insert(1) }, "stale handle must not fill a new reservation")
	old.Release()
	assert.Equal(t, 1, s.Reserved(), "stale handle must not release a new reservation")
	fresh.Insert(2)
	got, _ := s.Get(fresh.Key())
	assert.Equal(t, 2, got)
	checkInvariants(t, s)
}

func TestRemoveReserved(t *testing.T) {
	s := New[int](0)
	v, err := s.Vacant()
	require.NoError(t, err)
	got, ok := s.Remove(v.Key())
	assert.False(t, ok)
	assert.Zero(t, got)
	assert.Equal(t, 0, s.Reserved())
	assert.Panics(t, func() { v.Insert(1) })
	k, err := s.Insert(3)
	require.NoError(t, err)
	assert.Equal(t, v.Key(), k)
	checkInvariants(t, s)
}

func TestLimit(t *testing.T) {
	s := New[int](3)
	assert.Equal(t, 3, s.Limit())
	_, err := s.Insert(0)
	require.NoError(t, err)
	v, err := s.Vacant()
	require.NoError(t, err)
	_, err = s.Insert(2)
	require.NoError(t, err)

	k, err := s.Insert(3)
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, -1, k)
	_, err = s.Vacant()
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 3, s.Cap(), "never grows past the limit")
	checkInvariants(t, s)

	v.Release()
	v2, err := s.Vacant()
	require.NoError(t, err, "released reservation frees room")
	_, err = s.Insert(4)
	assert.ErrorIs(t, err, ErrFull)

	v2.Insert(1)
	_, ok := s.Remove(0)
	require.True(t, ok)
	k, err = s.Insert(5)
	require.NoError(t, err, "removal frees room")
	assert.Equal(t, 0, k)
	_, err = s.Insert(6)
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 3, s.Len())
	assert.Equal(t, 3, s.Cap())
	checkInvariants(t, s)
}

func TestLimitLargeGrowsLazily(t *testing.T) {
	s := New[int](1000)
	assert.Equal(t, 0, s.Cap(), "no memory before the first insert")
	for i := range 1000 {
		_, err := s.Insert(i)
		require.NoError(t, err)
		require.LessOrEqual(t, s.Cap(), 1000)
	}
	assert.Equal(t, 1000, s.Cap())
	_, err := s.Insert(0)
	assert.ErrorIs(t, err, ErrFull)
}

func TestNewNegativeLimitPanics(t *testing.T) {
	assert.Panics(t, func() { New[int](-1) })
}

func TestZeroValueUsable(t *testing.T) {
	var s Slab[int]
	k, err := s.Insert(1)
	require.NoError(t, err)
	assert.Equal(t, 0, k)
	s.Remove(k)
	k, err = s.Insert(2)
	require.NoError(t, err)
	assert.Equal(t, 0, k)
	assert.Equal(t, 0, s.Limit())
	checkInvariants(t, &s)
}

func TestLenReservedCap(t *testing.T) {
	s := New[int](0)
	assert.Equal(t, 0, s.Len())
	assert.Equal(t, 0, s.Reserved())
	assert.Equal(t, 0, s.Cap())

	for i := range 10 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}
	var vs []Vacant[int]
	for range 4 {
		v, err := s.Vacant()
		require.NoError(t, err)
		vs = append(vs, v)
	}
	assert.Equal(t, 10, s.Len())
	assert.Equal(t, 4, s.Reserved())
	assert.GreaterOrEqual(t, s.Cap(), 14)

	vs[0].Insert(0)
	vs[1].Release()
	s.Remove(3)
	assert.Equal(t, 10, s.Len())
	assert.Equal(t, 2, s.Reserved())
	checkInvariants(t, s)

	c := s.Cap()
	for i := range 200 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}
	assert.Greater(t, s.Cap(), c, "unbounded slab grows")
	checkInvariants(t, s)
}

func TestAllOrder(t *testing.T) {
	s := New[int](0)
	for i := range 10 {
		_, err := s.Insert(i * 10)
		require.NoError(t, err)
	}
	s.Remove(4)
	s.Remove(7)
	_, err := s.Vacant() // Reserved keys are skipped; this takes key 7.
	require.NoError(t, err)

	keys, vals := collect(s)
	assert.Equal(t, []int{0, 1, 2, 3, 5, 6, 8, 9}, keys)
	assert.Equal(t, []int{0, 10, 20, 30, 50, 60, 80, 90}, vals)
}

func TestAllRemoveDuringIteration(t *testing.T) {
	s := New[int](0)
	for i := range 20 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}

	// Remove every odd entry as it is visited (the zombie sweep pattern).
	var visited []int
	for k, v := range s.All() {
		visited = append(visited, k)
		if v%2 == 1 {
			_, ok := s.Remove(k)
			require.True(t, ok)
		}
	}
	assert.Len(t, visited, 20)
	keys, _ := collect(s)
	assert.Equal(t, []int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18}, keys)
	checkInvariants(t, s)

	// Removing entries ahead of the cursor hides them from the rest of the walk.
	visited = visited[:0]
	for k := range s.All() {
		visited = append(visited, k)
		if k == 4 {
			s.Remove(10)
			s.Remove(16)
			s.Remove(2) // Behind the cursor: already visited.
		}
	}
	assert.Equal(t, []int{0, 2, 4, 6, 8, 12, 14, 18}, visited)
	checkInvariants(t, s)

	// Removing everything from inside the loop.
	visited = visited[:0]
	for k := range s.All() {
		visited = append(visited, k)
		for k2 := range s.All() {
			s.Remove(k2)
		}
	}
	assert.Equal(t, []int{0}, visited)
	assert.Equal(t, 0, s.Len())
	checkInvariants(t, s)
}

func TestAllInsertDuringIteration(t *testing.T) {
	s := New[int](0)
	for i := range 4 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}
	// Inserting (and growing the backing array) while walking must not
	// crash, and the walk must still see every entry that was there.
	seen := map[int]bool{}
	for k := range s.All() {
		seen[k] = true
		if k < 4 {
			for range 50 {
				_, err := s.Insert(-1)
				require.NoError(t, err)
			}
		}
	}
	for k := range 4 {
		assert.True(t, seen[k])
	}
	checkInvariants(t, s)
}

func TestAllClearDuringIteration(t *testing.T) {
	s := New[int](0)
	for i := range 5 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}
	n := 0
	for range s.All() {
		n++
		s.Clear()
	}
	assert.Equal(t, 1, n)
}

func TestAllEarlyBreak(t *testing.T) {
	s := New[int](0)
	for i := range 10 {
		_, err := s.Insert(i)
		require.NoError(t, err)
	}
	var keys []int
	for k := range s.All() {
		if k == 3 {
			break
		}
		keys = append(keys, k)
	}
	assert.Equal(t, []int{0, 1, 2}, keys)

	// Stopping through the yield result directly, as iter.Pull and
	// hand-written consumers do, must be honoured too.
	calls := 0
	s.All()(func(int, int) bool {
		calls++
		return false
	})
	assert.Equal(t, 1, calls)
}

func TestClear(t *testing.T) {
	s := New[*int](0)
	for i := range 40 {
		x := i
		_, err := s.Insert(&x)
		require.NoError(t, err)
	}
	v, err := s.Vacant()
	require.NoError(t, err)
	s.Remove(5)
	c := s.Cap()

	s.Clear()
	assert.Equal(t, 0, s.Len())
	assert.Equal(t, 0, s.Reserved())
	assert.Equal(t, c, s.Cap(), "memory is kept")
	assert.False(t, s.Contains(0))
	keys, _ := collect(s)
	assert.Empty(t, keys)
	for _, p := range s.pages {
		for _, e := range p {
			assert.Nil(t, e.val, "cleared slot still references its value")
		}
	}
	assert.Panics(t, func() { v.Insert(nil) }, "reservations do not survive Clear")
	checkInvariants(t, s)

	for i := range 3 {
		k, err := s.Insert(nil)
		require.NoError(t, err)
		assert.Equal(t, i, k, "keys restart at 0")
	}
	v.Release() // Stale: must not touch the new entries.
	assert.Equal(t, 3, s.Len())
	checkInvariants(t, s)
}

func TestReplace(t *testing.T) {
	s := New[string](0)
	k, err := s.Insert("a")
	require.NoError(t, err)
	assert.True(t, s.Replace(k, "b"))
	got, _ := s.Get(k)
	assert.Equal(t, "b", got)
	assert.Equal(t, 1, s.Len())

	assert.False(t, s.Replace(k+1, "c"), "out of range")
	s.Remove(k)
	assert.False(t, s.Replace(k, "c"), "free")
	assert.False(t, s.Contains(k), "failed Replace must not occupy the key")
	checkInvariants(t, s)
}

func TestPtr(t *testing.T) {
	type sess struct{ n int }
	s := New[sess](0)
	k, err := s.Insert(sess{1})
	require.NoError(t, err)
	p := s.Ptr(k)
	require.NotNil(t, p)
	p.n = 42
	got, _ := s.Get(k)
	assert.Equal(t, 42, got.n, "Ptr writes through to the slab")
	s.Remove(k)
	assert.Nil(t, s.Ptr(k))
}

func TestBadKeys(t *testing.T) {
	s := New[int](0)
	_, err := s.Insert(1)
	require.NoError(t, err)
	for _, k := range []int{-1, -1 << 40, 1, 15, 16, 1 << 20, 1 << 40, int(^uint(0) >> 1)} {
		assert.NotPanics(t, func() {
			_, ok := s.Get(k)
			assert.False(t, ok, "Get(%d)", k)
			assert.Nil(t, s.Ptr(k), "Ptr(%d)", k)
			assert.False(t, s.Contains(k), "Contains(%d)", k)
			assert.False(t, s.Replace(k, 9), "Replace(%d)", k)
			_, ok = s.Remove(k)
			assert.False(t, ok, "Remove(%d)", k)
		})
	}
	assert.Equal(t, 1, s.Len())
	checkInvariants(t, s)
}

// TestRandomAgainstModel drives the slab with random operations and compares
// it after every step against a straightforward model: a map of occupied
// keys, a map of live reservations, and a LIFO stack of freed keys.
func TestRandomAgainstModel(t *testing.T) {
	for _, limit := range []int{0, 1, 7, 64} {
		for seed := range uint64(3) {
			runModel(t, limit, seed)
		}
	}
}

func runModel(t *testing.T, limit int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(limit)))
	s := New[int](limit)

	occupied := map[int]int{}
	reserved := map[int]Vacant[int]{}
	var stale []Vacant[int] // Filled or released handles.
	var freeStack []int     // Top is the next key to reuse.
	next := 0               // Next never-used key.

	expectKey := func() int {
		if n := len(freeStack); n > 0 {
			return freeStack[n-1]
		}
		return next
	}
	take := func(k int) {
		if n := len(freeStack); n > 0 {
			require.Equal(t, freeStack[n-1], k)
			freeStack = freeStack[:n-1]
		} else {
			require.Equal(t, next, k)
			next++
		}
	}
	full := func() bool { return limit > 0 && len(occupied)+len(reserved) >= limit }
	pick := func() int { return rng.IntN(next+3) - 1 } // Includes -1 and out-of-range keys.

	for op := range 4000 {
		switch r := rng.IntN(100); {
		case r < 30: // Insert.
			want, wantFull := expectKey(), full()
			k, err := s.Insert(op)
			if wantFull {
				require.ErrorIs(t, err, ErrFull)
				break
			}
			require.NoError(t, err)
			require.Equal(t, want, k)
			take(k)
			occupied[k] = op
		case r < 45: // Vacant.
			want, wantFull := expectKey(), full()
			v, err := s.Vacant()
			if wantFull {
				require.ErrorIs(t, err, ErrFull)
				break
			}
			require.NoError(t, err)
			require.Equal(t, want, v.Key())
			take(v.Key())
			reserved[v.Key()] = v
		case r < 55: // Fill a reservation.
			for k, v := range reserved {
				v.Insert(op)
				delete(reserved, k)
				occupied[k] = op
				stale = append(stale, v)
				break
			}
		case r < 60: // Release a reservation.
			for k, v := range reserved {
				v.Release()
				delete(reserved, k)
				freeStack = append(freeStack, k)
				stale = append(stale, v)
				break
			}
		case r < 63: // Misuse a stale handle: must panic on Insert, no-op on Release.
			if len(stale) > 0 {
				v := stale[rng.IntN(len(stale))]
				require.Panics(t, func() { v.Insert(-1) })
				v.Release()
			}
		case r < 85: // Remove, sometimes a reserved or bad key.
			k := pick()
			got, ok := s.Remove(k)
			if want, in := occupied[k]; in {
				require.True(t, ok)
				require.Equal(t, want, got)
				delete(occupied, k)
				freeStack = append(freeStack, k)
			} else {
				require.False(t, ok)
				require.Zero(t, got)
				if v, in := reserved[k]; in {
					delete(reserved, k)
					freeStack = append(freeStack, k)
					stale = append(stale, v)
				}
			}
		case r < 92: // Replace.
			k := pick()
			_, in := occupied[k]
			require.Equal(t, in, s.Replace(k, -op))
			if in {
				occupied[k] = -op
			}
		case r < 94: // Remove some entries while iterating.
			for k, v := range s.All() {
				require.Equal(t, occupied[k], v)
				if rng.IntN(3) == 0 {
					_, ok := s.Remove(k)
					require.True(t, ok)
					delete(occupied, k)
					freeStack = append(freeStack, k)
				}
			}
		case r < 95: // Clear, rarely.
			if rng.IntN(4) == 0 {
				s.Clear()
				clear(occupied)
				for _, v := range reserved {
					stale = append(stale, v)
				}
				clear(reserved)
				freeStack = freeStack[:0]
				next = 0
			}
		default: // Lookups.
			k := pick()
			want, in := occupied[k]
			got, ok := s.Get(k)
			require.Equal(t, in, ok)
			require.Equal(t, want, got)
			require.Equal(t, in, s.Contains(k))
			if p := s.Ptr(k); in {
				require.NotNil(t, p)
				require.Equal(t, want, *p)
			} else {
				require.Nil(t, p)
			}
		}

		require.Equal(t, len(occupied), s.Len())
		require.Equal(t, len(reserved), s.Reserved())
		if op%50 == 0 {
			checkInvariants(t, s)
			keys, vals := collect(s)
			require.True(t, slices.IsSorted(keys))
			require.Len(t, keys, len(occupied))
			for i, k := range keys {
				require.Equal(t, occupied[k], vals[i])
			}
			for k := -1; k < next+2; k++ {
				_, in := occupied[k]
				require.Equal(t, in, s.Contains(k), "key %d", k)
			}
		}
	}
	checkInvariants(t, s)
}

func TestSteadyStateAllocs(t *testing.T) {
	const live = 10_000
	payload := new(int)
	s := New[*int](0)
	for range live {
		_, err := s.Insert(payload)
		require.NoError(t, err)
	}

	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		k := i % live
		i++
		s.Remove(k)
		if _, err := s.Insert(payload); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "Insert/Remove")

	allocs = testing.AllocsPerRun(1000, func() {
		v, err := s.Vacant()
		if err != nil {
			panic(err)
		}
		v.Insert(payload)
		s.Remove(v.Key())
	})
	assert.Zero(t, allocs, "Vacant/Insert/Remove")

	allocs = testing.AllocsPerRun(1000, func() {
		v, err := s.Vacant()
		if err != nil {
			panic(err)
		}
		v.Release()
	})
	assert.Zero(t, allocs, "Vacant/Release")

	n := 0
	allocs = testing.AllocsPerRun(100, func() {
		for range s.All() {
			n++
		}
	})
	assert.Zero(t, allocs, "All")
	assert.Equal(t, live, s.Len())
}

// A big slab grows by pages: it holds at most a page of slots beyond
// what it handed out, growing copies nothing (a pointer into a full page
// stays valid), and a bounded one stops at its limit.
func TestGrowsByPages(t *testing.T) {
	s := New[int](0)
	var first *int
	for i := 0; i < 3*pageSize+5; i++ {
		k, err := s.Insert(i)
		require.NoError(t, err)
		require.Equal(t, i, k)
		if i == pageSize { // the first slot of the second page
			first = s.Ptr(k)
		}
		require.LessOrEqual(t, s.Cap(), max(i+1+pageSize, minGrow))
	}
	require.Equal(t, 4*pageSize, s.Cap())
	assert.Equal(t, pageSize, *first, "a pointer into a full page survives growth")
	v, ok := s.Get(2*pageSize + 7)
	assert.True(t, ok)
	assert.Equal(t, 2*pageSize+7, v)
	checkInvariants(t, s)

	b := New[int](pageSize + 10)
	for i := 0; i < pageSize+10; i++ {
		_, err := b.Insert(i)
		require.NoError(t, err)
	}
	_, err := b.Insert(0)
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, pageSize+10, b.Cap(), "no slot beyond the limit")
	checkInvariants(t, b)
}
