package timer

import (
	"math/rand/v2"
	"testing"
	"time"
)

// benchLive is the number of live timers every benchmark keeps scheduled.
const benchLive = 100_000

// benchFixture is a wheel holding benchLive timers of random durations in
// [1 s, 60 s), with random tables so the timed loops draw nothing.
type benchFixture struct {
	w     *Wheel[int]
	clock *fakeClock
	hs    []Handle        // handle of each key in [0, benchLive)
	durs  []time.Duration // random durations in [1 s, 60 s)
	perm  []int           // random keys in [0, benchLive)
}

const benchTable = 1 << 16

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	rng := rand.New(rand.NewPCG(42, 42))
	w, clock := newTestWheel(Config{})
	f := &benchFixture{
		w:     w,
		clock: clock,
		hs:    make([]Handle, benchLive),
		durs:  make([]time.Duration, benchTable),
		perm:  make([]int, benchTable),
	}
	for i := range f.durs {
		f.durs[i] = time.Second + time.Duration(rng.Int64N(int64(59*time.Second)))
		f.perm[i] = rng.IntN(benchLive)
	}
	for k := range f.hs {
		f.hs[k] = w.Schedule(k, f.dur(k*7919))
	}
	return f
}

func (f *benchFixture) dur(i int) time.Duration { return f.durs[i&(benchTable-1)] }
func (f *benchFixture) key(i int) int           { return f.perm[i&(benchTable-1)] }

// tick advances the clock one tick, drains Poll and reschedules every fired
// key so benchLive timers stay live. It returns how many fired.
func (f *benchFixture) tick(i int) int {
	f.clock.Advance(time.Millisecond)
	now := f.clock.Now()
	n := 0
	for {
		k, ok := f.w.Poll(now)
		if !ok {
			return n
		}
		f.hs[k] = f.w.Schedule(k, f.dur(i+n))
		n++
	}
}

// warm runs the wheel for one minute of virtual time so deadlines are spread
// as in a long-running loop (some due at every tick).
func (f *benchFixture) warm() {
	for i := range 60_000 {
		f.tick(i)
	}
}

func BenchmarkSchedule(b *testing.B) {
	f := newBenchFixture(b)
	batch := make([]Handle, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch = append(batch, f.w.Schedule(benchLive+i, f.dur(i)))
		if len(batch) == cap(batch) {
			for _, h := range batch {
				f.w.Cancel(h)
			}
			batch = batch[:0]
		}
	}
}

func BenchmarkCancel(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := f.key(i)
		f.w.Cancel(f.hs[k])
		f.hs[k] = f.w.Schedule(k, f.dur(i))
	}
}

func BenchmarkReset(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.w.Reset(f.hs[f.key(i)], f.dur(i))
	}
}

func BenchmarkPoll(b *testing.B) {
	f := newBenchFixture(b)
	f.warm()
	fired := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fired += f.tick(i)
	}
	b.StopTimer()
	ns := float64(b.Elapsed().Nanoseconds())
	b.ReportMetric(ns/float64(b.N), "ns/tick")
	if fired > 0 {
		b.ReportMetric(ns/float64(fired), "ns/fired")
	}
	b.ReportMetric(float64(fired)/float64(b.N), "fired/tick")
}

func BenchmarkNextDeadline(b *testing.B) {
	b.Run("cached", func(b *testing.B) {
		f := newBenchFixture(b)
		f.warm()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f.w.NextDeadline()
		}
	})
	// Uncached with timers due at most ticks: the first occupied slot
	// usually answers exactly.
	b.Run("uncached", func(b *testing.B) {
		f := newBenchFixture(b)
		f.warm()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f.w.cacheOK = false
			f.w.NextDeadline()
		}
	})
	// Uncached right after scheduling, when nothing is due within the first
	// second: the scan gives up after maxScan occupied slots (early answer).
	b.Run("uncached-bounded", func(b *testing.B) {
		f := newBenchFixture(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f.w.cacheOK = false
			f.w.NextDeadline()
		}
	})
	// The loop's pattern: activity resets a random timer, then the loop asks
	// for its next wake-up.
	b.Run("after-reset", func(b *testing.B) {
		f := newBenchFixture(b)
		f.warm()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f.w.Reset(f.hs[f.key(i)], f.dur(i))
			f.w.NextDeadline()
		}
	})
}
