package backend

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hashPolicies are the built-in policies that map keys.
var hashPolicies = []Policy{Maglev, RingHash}

func TestKeyIsFNV1aThenMixed(t *testing.T) {
	for _, s := range []string{"", "a", "key-1", "key-2", "10.0.0.1:443", "a much longer key with spaces and ünïcödé"} {
		f := fnv.New64a()
		f.Write([]byte(s))
		assert.Equal(t, mix(f.Sum64()), Key(s), "%q", s)
		assert.Equal(t, Key(s), KeyBytes([]byte(s)), "%q", s)
	}
	// Pinned: a change here moves every key of every deployed proxy.
	assert.Equal(t, uint64(0xb8f083f8274e036a), Key(""))
	assert.Equal(t, uint64(0x36089f236d0081d8), Key("key-1"))
	assert.NotEqual(t, Key("key-1"), Key("key-2"))

	assert.Zero(t, testing.AllocsPerRun(100, func() {
		_ = Key("some client address")
		_ = KeyBytes([]byte("x"))
	}))
}

// names returns n backend specs of default weight named b0, b1, ...
func names(n int) []spec {
	specs := make([]spec, n)
	for i := range specs {
		specs[i] = spec{id: fmt.Sprintf("b%d", i)}
	}
	return specs
}

// keyed maps each of n keys "key-i" to the ID of its backend.
func keyed(t testing.TB, c *Cluster, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		b, err := c.PickKey(t0, Key(fmt.Sprintf("key-%d", i)), nil)
		require.NoError(t, err)
		out[i] = b.ID
	}
	return out
}

func TestKeySpreadIsEven(t *testing.T) {
	const keys, backends = 100_000, 10
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, _ := newCluster(t, Config{}, p, names(backends)...)
			m := make(map[string]int)
			for _, id := range keyed(t, c, keys) {
				m[id]++
			}
			require.Len(t, m, backends)
			lo, hi := keys, 0
			for id, n := range m {
				assert.InDelta(t, keys/backends, n, keys/backends/10, "backend %s", id)
				lo, hi = min(lo, n), max(hi, n)
			}
			t.Logf("%s: keys per backend from %d to %d (mean %d)", p, lo, hi, keys/backends)
		})
	}
}

func TestKeySpreadHonoursWeight(t *testing.T) {
	const keys = 60_000
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, _ := newCluster(t, Config{}, p, spec{"a", 100, false}, spec{"b", 200, false}, spec{"c", 300, false})
			m := make(map[string]int)
			for _, id := range keyed(t, c, keys) {
				m[id]++
			}
			assert.InEpsilon(t, 10_000, m["a"], 0.1)
			assert.InEpsilon(t, 20_000, m["b"], 0.1)
			assert.InEpsilon(t, 30_000, m["c"], 0.1)
		})
	}
}

// movement compares two key mappings: moved counts keys whose backend
// changed, and between those whose old and new backends both appear in
// before and after, the moves that consistent hashing should avoid.
func movement(before, after []string) (moved, between int) {
	inBefore, inAfter := make(map[string]bool), make(map[string]bool)
	for i := range before {
		inBefore[before[i]] = true
		inAfter[after[i]] = true
	}
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		moved++
		if inAfter[before[i]] && inBefore[after[i]] {
			between++
		}
	}
	return moved, between
}

func TestAddingABackendMovesOnlyItsShare(t *testing.T) {
	const keys = 100_000
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			cs, c, _ := newCluster(t, Config{}, p, names(10)...)
			before := keyed(t, c, keys)
			_, err := cs.AddBackend("c", Backend{ID: "b10", Address: addr(11)})
			require.NoError(t, err)
			after := keyed(t, c, keys)
			moved, between := movement(before, after)
			toNew := 0
			for _, id := range after {
				if id == "b10" {
					toNew++
				}
			}
			assert.Equal(t, moved, toNew+between)
			assert.LessOrEqual(t, float64(between), 0.05*keys, "keys moved between old backends")
			assert.LessOrEqual(t, float64(moved), (1.0/11+0.05)*keys, "keys moved in all")
			t.Logf("%s: adding an 11th backend moved %.2f%% of keys (ideal %.2f%%), %.2f%% between old backends",
				p, 100*float64(moved)/keys, 100.0/11, 100*float64(between)/keys)
		})
	}
}

func TestRemovingABackendMovesOnlyItsKeys(t *testing.T) {
	const keys = 100_000
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			cs, c, _ := newCluster(t, Config{}, p, names(10)...)
			before := keyed(t, c, keys)
			require.NoError(t, cs.RemoveBackend("c", "b3"))
			after := keyed(t, c, keys)
			survivors, stayed := 0, 0
			for i := range before {
				if before[i] == "b3" {
					assert.NotEqual(t, "b3", after[i])
					continue
				}
				survivors++
				if after[i] == before[i] {
					stayed++
				}
			}
			assert.GreaterOrEqual(t, float64(stayed), 0.95*float64(survivors), "survivors' keys stay put")
			t.Logf("%s: removing 1 of 10 backends kept %.2f%% of the survivors' keys in place",
				p, 100*float64(stayed)/float64(survivors))
		})
	}
}

func TestHashingIgnoresTheOrderOfAddition(t *testing.T) {
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			specs := names(7)
			_, c1, _ := newCluster(t, Config{}, p, specs...)
			for i, j := 0, len(specs)-1; i < j; i, j = i+1, j-1 {
				specs[i], specs[j] = specs[j], specs[i]
			}
			_, c2, _ := newCluster(t, Config{Rand: nil}, p, specs...)
			assert.Equal(t, keyed(t, c1, 5000), keyed(t, c2, 5000), "other workers and restarts agree")
		})
	}
}

func TestPickKeyRetriesMoveOnStably(t *testing.T) {
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, p, names(5)...)
			for k := range 200 {
				key := Key(fmt.Sprint("client-", k))
				var tried []*Backend
				for range len(bs) {
					b, err := c.PickKey(t0, key, tried)
					require.NoError(t, err)
					assert.NotContains(t, tried, b)
					again, err := c.PickKey(t0, key, tried)
					require.NoError(t, err)
					assert.Same(t, b, again, "the same key and tries give the same answer")
					tried = append(tried, b)
				}
				_, err := c.PickKey(t0, key, tried)
				require.ErrorIs(t, err, ErrNoBackend)
			}
		})
	}
}

func TestPickKeyAroundAnUnavailableBackend(t *testing.T) {
	const keys = 20_000
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, p, names(6)...)
			before := keyed(t, c, keys)
			now := t0.Add(time.Millisecond)
			takeDown(t, bs[2], now)
			after := make([]string, keys)
			spill := make(map[string]int)
			for i := range after {
				b, err := c.PickKey(now, Key(fmt.Sprintf("key-%d", i)), nil)
				require.NoError(t, err)
				after[i] = b.ID
				if before[i] == "b2" {
					spill[b.ID]++
				} else {
					assert.Equal(t, before[i], b.ID, "other backends keep their keys")
				}
			}
			assert.NotContains(t, spill, "b2")
			assert.Len(t, spill, 5, "a down backend's keys spread over all the others")
			for id, n := range spill {
				assert.Greater(t, n, keys/6/5/2, "backend %s gets a fair part of the spill", id)
			}
			// Back up: its keys come back.
			b := bs[2]
			b.ConnectStarted()
			b.ConnectSucceeded(now, time.Millisecond)
			b.Released()
			assert.Equal(t, before, keyed(t, c, keys))
		})
	}
}

func TestPickKeyPrefersPrimaries(t *testing.T) {
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			specs := names(6)
			specs[1].backup, specs[4].backup = true, true
			_, c, bs := newCluster(t, Config{}, p, specs...)
			m := make(map[string]int)
			for _, id := range keyed(t, c, 10_000) {
				m[id]++
			}
			assert.NotContains(t, m, "b1")
			assert.NotContains(t, m, "b4")
			for _, i := range []int{0, 2, 3, 5} {
				takeDown(t, bs[i], t0)
			}
			m = make(map[string]int)
			for _, id := range keyed(t, c, 10_000) {
				m[id]++
			}
			assert.Len(t, m, 2)
			assert.InDelta(t, 5000, m["b1"], 500)
			assert.InDelta(t, 5000, m["b4"], 500)
		})
	}
}

func TestNonKeyPoliciesIgnoreTheKey(t *testing.T) {
	_, c, _ := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	var got []string
	for range 6 {
		b, err := c.PickKey(t0, 42, nil)
		require.NoError(t, err)
		got = append(got, b.ID)
	}
	assert.Equal(t, []string{"a", "b", "c", "a", "b", "c"}, got)
	_, c, _ = newCluster(t, Config{}, RoundRobin)
	_, err := c.PickKey(t0, 42, nil)
	require.ErrorIs(t, err, ErrNoBackend)
}

func TestHashPoliciesWithoutAKeySpreadByWeight(t *testing.T) {
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, _ := newCluster(t, Config{}, p, spec{"a", 100, false}, spec{"b", 300, false})
			m := countPicks(t, c, t0, 20_000)
			assert.InEpsilon(t, 5000, m["a"], 0.1)
			assert.InEpsilon(t, 15000, m["b"], 0.1)
		})
	}
}

func TestRingHashBoundsTheLoad(t *testing.T) {
	for _, factor := range []float64{1, 1.25, 2} {
		t.Run(fmt.Sprint(factor), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, RingHashBounded(factor), names(4)...)
			hot := Key("the one hot client")
			first, err := c.PickKey(t0, hot, nil)
			require.NoError(t, err)
			for n := 1; n <= 400; n++ {
				b, err := c.PickKey(t0, hot, nil)
				require.NoError(t, err)
				b.ConnectStarted()
				// After n connections, no backend exceeds its bound.
				limit := int(math.Ceil(factor * float64(n) / 4))
				for _, x := range bs {
					require.LessOrEqual(t, x.Active(), limit, "after %d connections", n)
				}
			}
			assert.Equal(t, int(math.Ceil(factor*400/4)), first.Active(), "the key's own backend fills up to its bound first")
		})
	}
	// Unbounded, the hot key never leaves its backend.
	_, c, _ := newCluster(t, Config{}, RingHashBounded(0), names(4)...)
	hot := Key("the one hot client")
	first, err := c.PickKey(t0, hot, nil)
	require.NoError(t, err)
	for range 100 {
		b, err := c.PickKey(t0, hot, nil)
		require.NoError(t, err)
		b.ConnectStarted()
	}
	assert.Equal(t, 100, first.Active())
}

func TestRingHashBoundedValues(t *testing.T) {
	assert.Equal(t, RingHash, RingHashBounded(DefaultLoadFactor))
	assert.Equal(t, RingHashBounded(0), RingHashBounded(-3))
	assert.Equal(t, RingHashBounded(0), RingHashBounded(math.NaN()))
	assert.Equal(t, RingHashBounded(0), RingHashBounded(math.Inf(1)))
	assert.Equal(t, RingHashBounded(1), RingHashBounded(0.5))
	assert.Equal(t, "ringhash(unbounded)", RingHashBounded(0).String())
	assert.Equal(t, "ringhash(1.5)", RingHashBounded(1.5).String())
	assert.Equal(t, "ringhash", RingHash.String())

	cs, c, _ := newCluster(t, Config{}, RingHashBounded(1.5), names(2)...)
	g := c.Generation()
	_, err := cs.AddCluster("c", RingHashBounded(1.5))
	require.NoError(t, err)
	assert.Equal(t, g, c.Generation(), "an equal factor is the same policy")
	_, err = cs.AddCluster("c", RingHashBounded(2))
	require.NoError(t, err)
	assert.Greater(t, c.Generation(), g)
}

// firstKey is a user KeyPicker: the candidate at key modulo their number.
type firstKey struct{}

func (firstKey) NewPicker() Picker { return firstKeyPicker{} }
func (firstKey) String() string    { return "firstkey" }

type firstKeyPicker struct{}

func (firstKeyPicker) Reset([]*Backend)             {}
func (firstKeyPicker) Pick(cs *Candidates) *Backend { return cs.At(0) }
func (firstKeyPicker) PickKey(cs *Candidates, k uint64) *Backend {
	return cs.At(int(k % uint64(cs.Len())))
}

func TestUserKeyPicker(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, firstKey{}, names(3)...)
	for k := range uint64(6) {
		b, err := c.PickKey(t0, k, nil)
		require.NoError(t, err)
		assert.Same(t, bs[k%3], b, "the key reaches the picker as given")
	}
	b, err := c.Pick(t0, nil)
	require.NoError(t, err)
	assert.Same(t, bs[0], b, "no key: Pick")
}

func TestPickKeyDoesNotAllocate(t *testing.T) {
	for _, p := range hashPolicies {
		t.Run(p.String(), func(t *testing.T) {
			specs := names(10)
			specs[9].backup = true
			for i := range specs {
				specs[i].weight = 10 * (i + 1)
			}
			_, c, bs := newCluster(t, Config{}, p, specs...)
			takeDown(t, bs[0], t0)
			tried := []*Backend{bs[1], bs[2]}
			now := t0
			key := uint64(0)
			allocs := testing.AllocsPerRun(1000, func() {
				now = now.Add(time.Millisecond)
				key++
				b, err := c.PickKey(now, key, tried)
				if err != nil {
					panic(err)
				}
				b.ConnectStarted()
				b.ConnectSucceeded(now, time.Millisecond)
				b.Released()
				bs[0].ConnectStarted()
				bs[0].ConnectFailed(now)
			})
			assert.Zero(t, allocs)
		})
	}
}

func TestRingIsSorted(t *testing.T) {
	_, c, _ := newCluster(t, Config{}, RingHash, names(50)...)
	_, err := c.PickKey(t0, 1, nil)
	require.NoError(t, err)
	ring := c.picker.(*ringPicker).ring
	assert.Len(t, ring, 50*RingHashVNodes)
	assert.True(t, slices.IsSorted(ring))
}

func TestMaglevSlotsFollowWeights(t *testing.T) {
	specs := []spec{{"heavy", 10_000, false}}
	for i := range 999 {
		specs = append(specs, spec{fmt.Sprint("light", i), 1 + i%7, false})
	}
	_, c, bs := newCluster(t, Config{}, Maglev, specs...)
	start := time.Now()
	_, err := c.PickKey(t0, 1, nil)
	require.NoError(t, err)
	t.Logf("built a table for 1000 backends of uneven weights in %v", time.Since(start))

	m := c.picker.(*maglevPicker)
	slots := make(map[*Backend]int)
	for _, i := range m.table {
		slots[m.members[i]]++
	}
	var light int64
	for _, b := range bs[1:] {
		light += b.weight
	}
	want := float64(MaglevTableSize) * float64(light) / float64(light+bs[0].weight)
	assert.InEpsilon(t, want, MaglevTableSize-slots[bs[0]], 0.02, "the light ones share their part")
	for _, b := range bs[1:] {
		share := float64(MaglevTableSize) * float64(b.weight) / float64(light+bs[0].weight)
		assert.InDelta(t, share, slots[b], 2, "backend %s: within the last, partial round", b.ID)
	}

	// Equal weights: the slot counts differ by at most one.
	_, c, _ = newCluster(t, Config{}, Maglev, names(7)...)
	_, err = c.PickKey(t0, 1, nil)
	require.NoError(t, err)
	m = c.picker.(*maglevPicker)
	count := make([]int, len(m.members))
	for _, i := range m.table {
		count[i]++
	}
	assert.LessOrEqual(t, slices.Max(count)-slices.Min(count), 1)
}
