package timer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a virtual clock: tests move it by hand and never sleep.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *fakeClock) Set(t time.Time)         { c.t = t }

// newTestWheel returns a wheel on a fresh virtual clock; cfg.Now is set.
func newTestWheel(cfg Config) (*Wheel[int], *fakeClock) {
	c := newFakeClock()
	cfg.Now = c.Now
	return New[int](cfg), c
}

// drain polls w at now until it returns false.
func drain(w *Wheel[int], now time.Time) []int {
	var out []int
	for {
		k, ok := w.Poll(now)
		if !ok {
			return out
		}
		out = append(out, k)
	}
}

// checkInvariants verifies the wheel's internal structure. It uses plain
// comparisons rather than require in its loops to stay fast.
func checkInvariants(t testing.TB, w *Wheel[int]) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("invariant: "+format, args...)
	}
	live := 0
	minDeadline := int64(math.MaxInt64)
	for s := range w.slots {
		sl := &w.slots[s]
		occupied := w.occ[s>>6]&(1<<(s&63)) != 0
		if occupied != (sl.l.head != nilIdx) {
			fail("slot %d occupancy bit %v", s, occupied)
		}
		prev := nilIdx
		m := int64(math.MaxInt64)
		for i := sl.l.head; i != nilIdx; i = w.nodes[i].next {
			n := &w.nodes[i]
			switch {
			case n.prev != prev:
				fail("slot %d node %d prev %d want %d", s, i, n.prev, prev)
			case n.list != int32(s):
				fail("slot %d node %d list %d", s, i, n.list)
			case n.deadline&w.mask != int64(s):
				fail("slot %d node %d deadline %d", s, i, n.deadline)
			case n.deadline <= w.cursor:
				fail("slot %d node %d deadline %d <= cursor %d", s, i, n.deadline, w.cursor)
			}
			m = min(m, n.deadline)
			prev = i
			live++
		}
		if prev != sl.l.tail {
			fail("slot %d tail %d want %d", s, sl.l.tail, prev)
		}
		if occupied && !sl.stale && m != sl.min {
			fail("slot %d min %d want %d", s, sl.min, m)
		}
		minDeadline = min(minDeadline, m)
	}
	prev := nilIdx
	for i := w.expired.head; i != nilIdx; i = w.nodes[i].next {
		n := &w.nodes[i]
		switch {
		case n.prev != prev:
			fail("expired node %d prev %d want %d", i, n.prev, prev)
		case n.list != listExpired:
			fail("expired node %d list %d", i, n.list)
		case n.deadline > w.cursor:
			fail("expired node %d deadline %d > cursor %d", i, n.deadline, w.cursor)
		}
		prev = i
		live++
	}
	if prev != w.expired.tail {
		fail("expired tail %d want %d", w.expired.tail, prev)
	}
	if live != w.count {
		fail("count %d, %d linked", w.count, live)
	}
	free := 0
	for i := w.free; i != nilIdx; i = w.nodes[i].next {
		if w.nodes[i].list != listFree {
			fail("free node %d list %d", i, w.nodes[i].list)
		}
		free++
	}
	if live+free != len(w.nodes) {
		fail("%d live + %d free != %d nodes", live, free, len(w.nodes))
	}
	if w.cacheOK && w.count > 0 && (w.cacheTick <= w.cursor || w.cacheTick > minDeadline) {
		fail("cached tick %d, cursor %d, earliest %d", w.cacheTick, w.cursor, minDeadline)
	}
}

func TestConfigDefaults(t *testing.T) {
	w := New[int](Config{})
	require.Equal(t, time.Millisecond, w.tick)
	require.Len(t, w.slots, 4096)
	require.WithinDuration(t, time.Now(), w.Now(), time.Minute)

	for _, tc := range []struct {
		cfg   Config
		tick  time.Duration
		slots int
	}{
		{Config{Tick: -1, Slots: -1}, time.Millisecond, 4096},
		{Config{Tick: 10 * time.Microsecond, Slots: 10}, time.Millisecond, 64},
		{Config{Tick: 5 * time.Millisecond, Slots: 5000}, 5 * time.Millisecond, 8192},
		{Config{Slots: 1 << 30}, time.Millisecond, 1 << 24},
		{Config{Slots: 128}, time.Millisecond, 128},
	} {
		c := tc.cfg.withDefaults()
		require.Equal(t, tc.tick, c.Tick)
		require.Equal(t, tc.slots, c.Slots)
		require.NotNil(t, c.Now)
	}
}

func TestFiresInDeadlineOrder(t *testing.T) {
	w, clock := newTestWheel(Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	durs := make([]time.Duration, 500)
	for k := range durs {
		durs[k] = time.Duration(1+rng.IntN(3000)) * time.Millisecond
		w.Schedule(k, durs[k])
	}
	want := make([]int, len(durs))
	for k := range want {
		want[k] = k
	}
	// Ties keep scheduling order.
	slices.SortStableFunc(want, func(a, b int) int { return int(durs[a] - durs[b]) })

	var got []int
	for w.Len() > 0 {
		clock.Advance(time.Millisecond)
		for _, k := range drain(w, clock.Now()) {
			require.Equal(t, durs[k], clock.Now().Sub(w.origin), "key %d", k)
			got = append(got, k)
		}
	}
	require.Equal(t, want, got)
}

func TestNeverEarlyAtMostOneTickLate(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Slots: 64},
		{Tick: 10 * time.Millisecond, Slots: 128},
	} {
		t.Run("", func(t *testing.T) {
			w, clock := newTestWheel(cfg)
			tick := w.tick
			origin := w.origin
			rng := rand.New(rand.NewPCG(2, uint64(cfg.Slots)))

			type sched struct {
				due      time.Time
				wantPoll int64 // index of the first poll at or after due
			}
			pending := map[int]sched{}
			key := 0
			const polls = 3000
			for k := int64(1); k <= polls || len(pending) > 0; k++ {
				now := origin.Add(time.Duration(k) * tick)
				clock.Set(now)
				for _, f := range drain(w, now) {
					s, ok := pending[f]
					require.True(t, ok, "key %d fired twice or unknown", f)
					require.False(t, now.Before(s.due), "key %d fired early", f)
					require.LessOrEqual(t, now.Sub(s.due), tick, "key %d more than a tick late", f)
					require.Equal(t, s.wantPoll, k, "key %d not at its first poll", f)
					delete(pending, f)
				}
				if k > polls {
					continue
				}
				// Schedule a few timers between this poll and the next, at a
				// random point inside the tick.
				clock.Set(now.Add(time.Duration(rng.Int64N(int64(tick)))))
				for range rng.IntN(4) {
					var d time.Duration
					switch rng.IntN(4) {
					case 0:
						d = 0
					case 1:
						d = time.Duration(rng.IntN(100)) * tick
					default:
						d = time.Duration(rng.Int64N(int64(3 * time.Second)))
					}
					due := clock.Now().Add(d)
					el := due.Sub(origin)
					want := int64(el / tick)
					if el%tick != 0 {
						want++
					}
					want = max(want, k+1)
					w.Schedule(key, d)
					pending[key] = sched{due: due, wantPoll: want}
					key++
				}
			}
			require.Zero(t, w.Len())
			checkInvariants(t, w)
		})
	}
}

func TestFarTimeouts(t *testing.T) {
	const turn = 4096 * time.Millisecond
	durs := map[int]time.Duration{
		1: 10 * time.Minute,
		2: time.Hour,
		3: 100 * time.Millisecond,
		4: 100*time.Millisecond + turn,
		5: 100*time.Millisecond + 3*turn,
		6: time.Hour + time.Millisecond,
		7: 10*time.Minute + 250*time.Microsecond, // rounds up to the next tick
	}
	keys := []int{3, 4, 5, 1, 7, 2, 6}

	for _, stride := range []time.Duration{997 * time.Millisecond, 10 * time.Minute} {
		w, clock := newTestWheel(Config{})
		origin := clock.Now()
		for _, k := range keys {
			w.Schedule(k, durs[k])
		}
		fired := map[int]time.Time{}
		step := func(to time.Time) {
			clock.Set(to)
			for _, k := range drain(w, to) {
				_, dup := fired[k]
				require.False(t, dup)
				fired[k] = to
			}
		}
		for _, k := range keys {
			due := origin.Add(durs[k])
			fireAt := due.Truncate(0)
			if r := durs[k] % time.Millisecond; r != 0 {
				fireAt = due.Add(time.Millisecond - r)
			}
			for clock.Now().Before(fireAt.Add(-time.Millisecond)) {
				step(minTime(clock.Now().Add(stride), fireAt.Add(-time.Millisecond)))
			}
			require.NotContains(t, fired, k, "key %d fired early", k)
			nd, ok := w.NextDeadline()
			require.True(t, ok)
			require.False(t, nd.After(fireAt))
			step(fireAt)
			require.Contains(t, fired, k, "key %d did not fire at %v", k, durs[k])
			require.Equal(t, fireAt, fired[k])
			checkInvariants(t, w)
		}
		require.Zero(t, w.Len())
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestSameSlotDifferentTurns(t *testing.T) {
	w, clock := newTestWheel(Config{Slots: 64})
	// Keys 0..4 all land in the slot of tick 10, one turn apart each.
	for k := 4; k >= 0; k-- {
		w.Schedule(k, time.Duration(10+64*k)*time.Millisecond)
	}
	require.Equal(t, 1, popcount(w.occ))
	for k := 0; k < 5; k++ {
		nd, ok := w.NextDeadline()
		require.True(t, ok)
		require.Equal(t, w.origin.Add(time.Duration(10+64*k)*time.Millisecond), nd)
		clock.Set(nd.Add(-time.Millisecond))
		require.Empty(t, drain(w, clock.Now()))
		clock.Set(nd)
		require.Equal(t, []int{k}, drain(w, clock.Now()))
		checkInvariants(t, w)
	}
}

func popcount(occ []uint64) int {
	n := 0
	for _, w := range occ {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

func TestCancel(t *testing.T) {
	w, clock := newTestWheel(Config{})
	h := w.Schedule(1, 10*time.Millisecond)
	h2 := w.Schedule(2, 10*time.Millisecond)
	require.True(t, w.Pending(h))
	require.Equal(t, 2, w.Len())
	require.True(t, w.Cancel(h))
	require.False(t, w.Pending(h))
	require.False(t, w.Cancel(h))
	require.Equal(t, 1, w.Len())
	clock.Advance(time.Second)
	require.Equal(t, []int{2}, drain(w, clock.Now()))
	require.False(t, w.Pending(h2))
	require.False(t, w.Cancel(h2), "fired handle is stale")
	require.Zero(t, w.Len())
	_, ok := w.NextDeadline()
	require.False(t, ok)
	checkInvariants(t, w)
}

func TestReset(t *testing.T) {
	t.Run("earlier", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		h := w.Schedule(1, 100*time.Millisecond)
		clock.Advance(10 * time.Millisecond)
		require.True(t, w.Reset(h, 40*time.Millisecond))
		require.True(t, w.Pending(h))
		nd, _ := w.NextDeadline()
		require.Equal(t, w.origin.Add(50*time.Millisecond), nd)
		clock.Set(w.origin.Add(49 * time.Millisecond))
		require.Empty(t, drain(w, clock.Now()))
		clock.Advance(time.Millisecond)
		require.Equal(t, []int{1}, drain(w, clock.Now()))
		clock.Advance(time.Second)
		require.Empty(t, drain(w, clock.Now()), "fires once")
	})
	t.Run("later", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		h := w.Schedule(1, 50*time.Millisecond)
		clock.Advance(30 * time.Millisecond)
		require.Empty(t, drain(w, clock.Now()))
		require.True(t, w.Reset(h, 100*time.Millisecond))
		nd, _ := w.NextDeadline()
		require.Equal(t, w.origin.Add(130*time.Millisecond), nd)
		clock.Set(w.origin.Add(129 * time.Millisecond))
		require.Empty(t, drain(w, clock.Now()))
		clock.Advance(time.Millisecond)
		require.Equal(t, []int{1}, drain(w, clock.Now()))
		require.False(t, w.Reset(h, time.Second), "fired handle is stale")
		require.Zero(t, w.Len())
	})
	t.Run("far", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		h := w.Schedule(1, 50*time.Millisecond)
		require.True(t, w.Reset(h, time.Hour))
		clock.Advance(time.Hour - time.Millisecond)
		require.Empty(t, drain(w, clock.Now()))
		clock.Advance(time.Millisecond)
		require.Equal(t, []int{1}, drain(w, clock.Now()))
	})
}

func TestCancelExpiredUnpolled(t *testing.T) {
	w, clock := newTestWheel(Config{})
	h1 := w.Schedule(1, 5*time.Millisecond)
	h2 := w.Schedule(2, 5*time.Millisecond)
	h3 := w.Schedule(3, 5*time.Millisecond)
	h4 := w.Schedule(4, 5*time.Millisecond)
	clock.Advance(5 * time.Millisecond)
	k, ok := w.Poll(clock.Now())
	require.True(t, ok)
	require.Equal(t, 1, k)
	require.False(t, w.Pending(h1))
	// 2, 3 and 4 are expired but not yet returned.
	require.True(t, w.Pending(h2))
	require.Equal(t, 3, w.Len())
	require.True(t, w.Cancel(h2))
	require.False(t, w.Pending(h2))
	require.True(t, w.Reset(h4, 10*time.Millisecond))
	require.Equal(t, 2, w.Len())
	checkInvariants(t, w)
	require.Equal(t, []int{3}, drain(w, clock.Now()))
	require.False(t, w.Pending(h3))
	require.True(t, w.Pending(h4))
	clock.Advance(9 * time.Millisecond)
	require.Empty(t, drain(w, clock.Now()))
	clock.Advance(time.Millisecond)
	require.Equal(t, []int{4}, drain(w, clock.Now()))
	require.Zero(t, w.Len())
	checkInvariants(t, w)
}

func TestStaleHandleGeneration(t *testing.T) {
	w, clock := newTestWheel(Config{})
	h1 := w.Schedule(1, 10*time.Millisecond)
	require.True(t, w.Cancel(h1))
	h2 := w.Schedule(2, 20*time.Millisecond)
	require.Equal(t, h1.idx, h2.idx, "node reused")
	require.NotEqual(t, h1, h2)
	require.False(t, w.Cancel(h1))
	require.False(t, w.Reset(h1, time.Millisecond))
	require.False(t, w.Pending(h1))
	require.True(t, w.Pending(h2))
	require.Equal(t, 1, w.Len())

	clock.Advance(20 * time.Millisecond)
	require.Equal(t, []int{2}, drain(w, clock.Now()), "new timer unaffected")

	// A handle whose timer fired is stale too, even once the node is reused.
	h3 := w.Schedule(3, 10*time.Millisecond)
	require.Equal(t, h2.idx, h3.idx)
	require.False(t, w.Cancel(h2))
	require.False(t, w.Reset(h2, time.Hour))
	require.True(t, w.Pending(h3))
	clock.Advance(10 * time.Millisecond)
	require.Equal(t, []int{3}, drain(w, clock.Now()))
	checkInvariants(t, w)
}

func TestZeroHandle(t *testing.T) {
	w, _ := newTestWheel(Config{})
	var z Handle
	require.True(t, z.IsZero())
	require.False(t, w.Cancel(z))
	require.False(t, w.Reset(z, time.Second))
	require.False(t, w.Pending(z))
	h := w.Schedule(1, time.Second)
	require.False(t, h.IsZero())
	require.False(t, w.Cancel(z), "zero handle does not alias node 0")
	require.True(t, w.Pending(h))
	require.False(t, w.Pending(Handle{idx: 100, gen: 1}))
	require.False(t, w.Pending(Handle{idx: -1, gen: 1}))
}

func TestBigJump(t *testing.T) {
	w, clock := newTestWheel(Config{})
	const turn = 4096 * time.Millisecond
	rng := rand.New(rand.NewPCG(3, 3))
	durs := make([]time.Duration, 5000)
	for k := range durs {
		durs[k] = time.Duration(rng.Int64N(int64(20*turn))).Truncate(time.Millisecond) + time.Millisecond
		w.Schedule(k, durs[k])
	}
	seen := make([]bool, len(durs))
	for _, at := range []time.Duration{10 * turn, 10*turn + 5*time.Millisecond, 25 * turn} {
		clock.Set(w.origin.Add(at))
		for _, k := range drain(w, clock.Now()) {
			require.False(t, seen[k], "key %d fired twice", k)
			require.LessOrEqual(t, durs[k], at, "key %d fired early", k)
			seen[k] = true
		}
		for k, d := range durs {
			require.Equal(t, d <= at, seen[k], "key %d due %v at %v", k, d, at)
		}
		checkInvariants(t, w)
	}
	require.Zero(t, w.Len())
}

func TestScheduleWhileDraining(t *testing.T) {
	// Timers scheduled between Poll calls while draining are due at the next
	// tick at the earliest: draining at the same now never returns them, so
	// a handler that reschedules with d <= 0 cannot make draining loop.
	w, clock := newTestWheel(Config{})
	for k := 1; k <= 3; k++ {
		w.Schedule(k, 5*time.Millisecond)
	}
	clock.Advance(5 * time.Millisecond)
	now := clock.Now()
	k, ok := w.Poll(now)
	require.True(t, ok)
	require.Equal(t, 1, k)
	w.Schedule(10, 0)
	w.Schedule(11, -time.Second)
	w.Schedule(12, time.Millisecond)
	w.Schedule(13, 2*time.Millisecond)
	require.Equal(t, []int{2, 3}, drain(w, now))
	require.Equal(t, 4, w.Len())
	nd, ok := w.NextDeadline()
	require.True(t, ok)
	require.Equal(t, now.Add(time.Millisecond), nd)
	// Even when the clock has moved on, the poll's own now decides.
	clock.Advance(time.Millisecond)
	require.Empty(t, drain(w, now))
	require.Equal(t, []int{10, 11, 12}, drain(w, clock.Now()))
	clock.Advance(time.Millisecond)
	require.Equal(t, []int{13}, drain(w, clock.Now()))
}

func TestScheduleZeroBeforeFirstPoll(t *testing.T) {
	w, clock := newTestWheel(Config{})
	w.Schedule(1, 0)
	require.Empty(t, drain(w, clock.Now()))
	clock.Advance(time.Millisecond - 1)
	require.Empty(t, drain(w, clock.Now()))
	clock.Advance(1)
	require.Equal(t, []int{1}, drain(w, clock.Now()))
	// Before the origin nothing happens.
	require.Empty(t, drain(w, w.origin.Add(-time.Hour)))
}

func TestHugeDuration(t *testing.T) {
	w, clock := newTestWheel(Config{})
	h := w.Schedule(1, math.MaxInt64)
	nd, ok := w.NextDeadline()
	require.True(t, ok)
	require.True(t, nd.After(clock.Now().Add(100*365*24*time.Hour)))
	clock.Advance(10 * 365 * 24 * time.Hour)
	require.Empty(t, drain(w, clock.Now()))
	require.True(t, w.Pending(h))
	require.True(t, w.Reset(h, math.MaxInt64))
	checkInvariants(t, w)
}

func TestNextDeadline(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		_, ok := w.NextDeadline()
		require.False(t, ok)
		h := w.Schedule(1, time.Second)
		require.True(t, w.Cancel(h))
		_, ok = w.NextDeadline()
		require.False(t, ok)
		w.Schedule(1, time.Millisecond)
		clock.Advance(time.Millisecond)
		drain(w, clock.Now())
		_, ok = w.NextDeadline()
		require.False(t, ok)
	})
	t.Run("exact within turn", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		h1 := w.Schedule(1, 250*time.Millisecond)
		nd, ok := w.NextDeadline()
		require.True(t, ok)
		require.Equal(t, w.origin.Add(250*time.Millisecond), nd)
		w.Schedule(2, 3*time.Second)
		h3 := w.Schedule(3, 120*time.Millisecond+300*time.Microsecond)
		nd, _ = w.NextDeadline()
		require.Equal(t, w.origin.Add(121*time.Millisecond), nd, "rounded up to the tick")
		require.True(t, w.Cancel(h3))
		nd, _ = w.NextDeadline()
		require.Equal(t, w.origin.Add(250*time.Millisecond), nd)
		clock.Advance(100 * time.Millisecond)
		require.Empty(t, drain(w, clock.Now()))
		nd, _ = w.NextDeadline()
		require.Equal(t, w.origin.Add(250*time.Millisecond), nd)
		require.True(t, w.Reset(h1, time.Second))
		nd, _ = w.NextDeadline()
		require.Equal(t, w.origin.Add(1100*time.Millisecond), nd)
		// Polling at the deadline fires; just before it does not.
		require.Empty(t, drain(w, nd.Add(-1)))
		require.Equal(t, []int{1}, drain(w, nd))
		nd, _ = w.NextDeadline()
		require.Equal(t, w.origin.Add(3*time.Second), nd)
	})
	t.Run("expired pending is now", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		w.Schedule(1, 10*time.Millisecond)
		w.Schedule(2, 10*time.Millisecond)
		clock.Advance(15 * time.Millisecond)
		_, ok := w.Poll(clock.Now())
		require.True(t, ok)
		nd, ok := w.NextDeadline()
		require.True(t, ok)
		require.Equal(t, w.origin.Add(15*time.Millisecond), nd)
	})
	t.Run("only far timers", func(t *testing.T) {
		w, clock := newTestWheel(Config{})
		rng := rand.New(rand.NewPCG(4, 4))
		earliest := time.Duration(math.MaxInt64)
		hs := make([]Handle, 0, 2000)
		for k := range 2000 {
			d := 10*time.Second + time.Duration(rng.Int64N(int64(time.Hour))).Truncate(time.Millisecond)
			earliest = min(earliest, d)
			hs = append(hs, w.Schedule(k, d))
		}
		nd, ok := w.NextDeadline()
		require.True(t, ok)
		require.False(t, nd.After(w.origin.Add(earliest)))
		require.True(t, nd.After(clock.Now()))
		require.Less(t, nd.Sub(clock.Now()), earliest, "conservative answer")

		// Once emptied, the conservative bound is forgotten: a new timer's
		// deadline is exact again.
		for _, h := range hs {
			require.True(t, w.Cancel(h))
		}
		w.Schedule(1, 500*time.Millisecond)
		nd, _ = w.NextDeadline()
		require.Equal(t, clock.Now().Add(500*time.Millisecond), nd)

		// Few far timers: every occupied slot is examined, so it is exact.
		w2, _ := newTestWheel(Config{})
		w2.Schedule(1, time.Hour)
		w2.Schedule(2, 10*time.Minute)
		w2.Schedule(3, 10*time.Minute+5*time.Millisecond)
		nd, _ = w2.NextDeadline()
		require.Equal(t, w2.origin.Add(10*time.Minute), nd)
	})
	t.Run("loop", func(t *testing.T) {
		// An event loop sleeping until NextDeadline sees every timer fire at
		// its tick, never early, and wakes up a bounded number of times.
		w, clock := newTestWheel(Config{})
		rng := rand.New(rand.NewPCG(5, 5))
		due := map[int]time.Time{}
		for k := range 3000 {
			d := time.Duration(rng.Int64N(int64(10 * time.Minute)))
			due[k] = clock.Now().Add(d)
			w.Schedule(k, d)
		}
		wakeups := 0
		for {
			nd, ok := w.NextDeadline()
			if !ok {
				break
			}
			// After a full drain the next wake-up must be strictly later,
			// or the loop would spin.
			require.True(t, wakeups == 0 || nd.After(clock.Now()), "deadline does not advance")
			require.Less(t, wakeups, 3000+10*60*1000/maxScan)
			clock.Set(nd)
			wakeups++
			for _, k := range drain(w, nd) {
				require.False(t, nd.Before(due[k]), "early")
				require.Less(t, nd.Sub(due[k]), time.Millisecond, "late")
				delete(due, k)
			}
		}
		require.Empty(t, due)
	})
}

func TestNextDeadlineRandom100k(t *testing.T) {
	w, clock := newTestWheel(Config{})
	rng := rand.New(rand.NewPCG(6, 6))
	type entry struct {
		h    Handle
		due  time.Time
		live bool
	}
	entries := make([]entry, 100_000)
	for k := range entries {
		d := time.Second + time.Duration(rng.Int64N(int64(59*time.Second))).Truncate(time.Millisecond)
		entries[k] = entry{h: w.Schedule(k, d), due: clock.Now().Add(d), live: true}
	}
	check := func() {
		t.Helper()
		var earliest time.Time
		n := 0
		for _, e := range entries {
			if e.live && (n == 0 || e.due.Before(earliest)) {
				earliest = e.due
			}
			if e.live {
				n++
			}
		}
		require.Equal(t, n, w.Len())
		nd, ok := w.NextDeadline()
		require.Equal(t, n > 0, ok)
		if ok {
			require.False(t, nd.After(earliest), "NextDeadline %v later than earliest %v", nd, earliest)
			require.True(t, nd.After(clock.Now()), "NextDeadline in the past")
		}
	}
	check()
	for round := range 20 {
		for range 5000 {
			k := rng.IntN(len(entries))
			if got := w.Cancel(entries[k].h); got != entries[k].live {
				t.Fatalf("Cancel(key %d) = %v, live %v", k, got, entries[k].live)
			}
			entries[k].live = false
		}
		check()
		clock.Advance(time.Duration(rng.Int64N(int64(3 * time.Second))).Truncate(time.Millisecond))
		for _, k := range drain(w, clock.Now()) {
			if !entries[k].live || entries[k].due.After(clock.Now()) {
				t.Fatalf("key %d fired: live %v, due %v, now %v", k, entries[k].live, entries[k].due, clock.Now())
			}
			entries[k].live = false
		}
		check()
		if round%5 == 0 {
			checkInvariants(t, w)
		}
	}
}

func TestLen(t *testing.T) {
	w, clock := newTestWheel(Config{})
	require.Zero(t, w.Len())
	hs := make([]Handle, 10)
	for k := range hs {
		hs[k] = w.Schedule(k, time.Duration(k+1)*time.Millisecond)
		require.Equal(t, k+1, w.Len())
	}
	require.True(t, w.Cancel(hs[9]))
	require.Equal(t, 9, w.Len())
	require.True(t, w.Reset(hs[0], time.Second))
	require.Equal(t, 9, w.Len())
	clock.Advance(5 * time.Millisecond)
	_, ok := w.Poll(clock.Now())
	require.True(t, ok)
	require.Equal(t, 8, w.Len(), "expired but unpolled still count")
	drain(w, clock.Now())
	require.Equal(t, 5, w.Len())
	clock.Advance(time.Second)
	drain(w, clock.Now())
	require.Zero(t, w.Len())
}

// TestModel runs random operations against the wheel and a reference that
// applies the documented rules directly.
func TestModel(t *testing.T) {
	for i, cfg := range []Config{
		{Slots: 64},
		{Tick: 3 * time.Millisecond, Slots: 128},
		{},
	} {
		t.Run("", func(t *testing.T) {
			w, clock := newTestWheel(cfg)
			rng := rand.New(rand.NewPCG(7, uint64(i)))
			tick := w.tick
			turn := tick * time.Duration(len(w.slots))
			origin := w.origin

			type ref struct {
				h    Handle
				due  time.Time
				tick int64
			}
			live := map[int]*ref{}
			var keys []int // live keys, for random picks
			var dead []Handle
			var cursor int64
			nextKey := 0

			ceilTick := func(due time.Time) int64 {
				el := due.Sub(origin)
				n := int64(el / tick)
				if el > 0 && el%tick != 0 {
					n++
				}
				return n
			}
			randDur := func() time.Duration {
				switch rng.IntN(10) {
				case 0:
					return 0
				case 1:
					return -time.Duration(rng.Int64N(int64(time.Second)))
				case 2:
					return time.Duration(rng.Int64N(int64(10 * turn)))
				case 3, 4:
					return time.Duration(rng.IntN(50)) * tick
				default:
					return time.Duration(rng.Int64N(int64(2 * turn)))
				}
			}
			remove := func(k int) {
				dead = append(dead, live[k].h)
				delete(live, k)
				idx := slices.Index(keys, k)
				keys[idx] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
			}
			hasExpired := func() bool {
				for _, r := range live {
					if r.tick <= cursor {
						return true
					}
				}
				return false
			}
			poll := func() bool {
				now := clock.Now()
				if !hasExpired() {
					el := now.Sub(origin)
					if el >= 0 {
						cursor = max(cursor, int64(el/tick))
					}
				}
				k, ok := w.Poll(now)
				if !ok {
					require.False(t, hasExpired(), "a due timer was not returned")
					return false
				}
				r, found := live[k]
				require.True(t, found, "key %d unknown or returned twice", k)
				require.LessOrEqual(t, r.tick, cursor)
				require.False(t, r.due.After(now), "key %d fired early", k)
				require.False(t, w.Pending(r.h))
				remove(k)
				return true
			}
			set := func(d time.Duration) *ref {
				due := clock.Now().Add(max(d, 0))
				return &ref{due: due, tick: max(ceilTick(due), cursor+1)}
			}

			for op := range 6000 {
				switch x := rng.IntN(100); {
				case x < 30:
					d := randDur()
					r := set(d)
					r.h = w.Schedule(nextKey, d)
					live[nextKey] = r
					keys = append(keys, nextKey)
					nextKey++
				case x < 40 && len(keys) > 0:
					k := keys[rng.IntN(len(keys))]
					require.True(t, w.Cancel(live[k].h))
					remove(k)
				case x < 45 && len(dead) > 0:
					h := dead[rng.IntN(len(dead))]
					require.False(t, w.Cancel(h))
					require.False(t, w.Reset(h, time.Millisecond))
					require.False(t, w.Pending(h))
				case x < 60 && len(keys) > 0:
					k := keys[rng.IntN(len(keys))]
					d := randDur()
					h := live[k].h
					require.True(t, w.Reset(h, d))
					live[k] = set(d)
					live[k].h = h
				case x < 80:
					if rng.IntN(20) == 0 {
						clock.Advance(time.Duration(rng.Int64N(int64(5 * turn))))
					} else {
						clock.Advance(time.Duration(rng.Int64N(int64(turn / 4))))
					}
				case x < 90:
					for range rng.IntN(4) {
						poll()
					}
				default:
					for poll() {
					}
					// Everything due at least a tick ago has fired.
					for k, r := range live {
						require.True(t, clock.Now().Sub(r.due) < tick, "key %d more than a tick late", k)
					}
				}

				require.Equal(t, len(live), w.Len())
				require.Equal(t, cursor, w.cursor)
				nd, ok := w.NextDeadline()
				require.Equal(t, len(live) > 0, ok)
				if ok {
					if hasExpired() {
						require.Equal(t, origin.Add(time.Duration(cursor)*tick), nd)
					} else {
						earliest := int64(math.MaxInt64)
						for _, r := range live {
							earliest = min(earliest, r.tick)
						}
						got := int64(nd.Sub(origin) / tick)
						require.LessOrEqual(t, got, earliest)
						require.Greater(t, got, cursor)
						if len(w.slots) <= maxScan {
							require.Equal(t, earliest, got, "exact with few slots")
						}
					}
				}
				if len(w.slots) <= 128 || op%20 == 0 {
					checkInvariants(t, w)
				}
			}
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	w, clock := newTestWheel(Config{})
	rng := rand.New(rand.NewPCG(8, 8))
	hs := make([]Handle, 1000)
	for k := range hs {
		hs[k] = w.Schedule(k, time.Duration(1+rng.IntN(60_000))*time.Millisecond)
	}
	// Grow the node slice past what the loops below need.
	extra := make([]Handle, 100)
	for k := range extra {
		extra[k] = w.Schedule(-1, time.Hour)
	}
	for _, h := range extra {
		w.Cancel(h)
	}

	i := 0
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		h := w.Schedule(i, time.Duration(1+i%60_000)*time.Millisecond)
		w.Cancel(h)
		i++
	}), "schedule+cancel")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		w.Reset(hs[i%len(hs)], time.Duration(1+i%60_000)*time.Millisecond)
		i++
	}), "reset")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		w.Schedule(-2, 0)
		clock.Advance(time.Millisecond)
		for {
			k, ok := w.Poll(clock.Now())
			if !ok {
				break
			}
			if k >= 0 {
				hs[k] = w.Schedule(k, time.Duration(1+i%60_000)*time.Millisecond)
			}
		}
		i++
	}), "schedule+poll")
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		w.Reset(hs[i%len(hs)], time.Duration(1+i%60_000)*time.Millisecond)
		w.NextDeadline()
		i++
	}), "next deadline")
}
