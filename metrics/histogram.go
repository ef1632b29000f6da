package metrics

import (
	"sync/atomic"
	"time"
)

// DurationBuckets are the upper bounds of a [Histogram]'s buckets, from
// half a millisecond (a request served from a warm pool on loopback) to
// a minute (a slow upload, a long poll), roughly three per decade as
// Prometheus client libraries choose them.
var DurationBuckets = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// bucketCount is one bucket per bound and one for what is above the last.
const bucketCount = len(DurationBuckets) + 1

// Histogram counts durations in the [DurationBuckets]. It is meant to
// have one writer (a worker's loop, which owns it) and any number of
// readers: Observe is two uncontended atomic adds, no lock and no
// allocation; [Histogram.Load] may run on any goroutine. A proxy keeps
// one per worker and sums them when scraped ([Set.Histogram] adds).
//
// The zero value is empty and ready.
type Histogram struct {
	counts [bucketCount]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Observe counts d. A negative d (a clock step back) counts as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucket(d)].Add(1)
	h.sum.Add(int64(d))
}

func bucket(d time.Duration) int {
	i := 0
	for i < len(DurationBuckets) && d > DurationBuckets[i] {
		i++
	}
	return i
}

// Load copies the histogram's counts.
func (h *Histogram) Load() HistogramValue {
	var v HistogramValue
	for i := range h.counts {
		v.Counts[i] = h.counts[i].Load()
	}
	v.Sum = time.Duration(h.sum.Load())
	return v
}

// HistogramValue is a copy of a [Histogram]: the count in each bucket
// (not cumulative; the last is above the last bound) and the sum of the
// durations observed.
type HistogramValue struct {
	Counts [bucketCount]uint64
	Sum    time.Duration
}

// Observe counts d in v: the plain form of [Histogram.Observe], for a
// value only its owner's goroutine touches (a backend's, owned by its
// worker's loop).
func (v *HistogramValue) Observe(d time.Duration) {
	d = max(d, 0)
	v.Counts[bucket(d)]++
	v.Sum += d
}

// Count is the number of durations observed.
func (v HistogramValue) Count() uint64 {
	var n uint64
	for _, c := range v.Counts {
		n += c
	}
	return n
}

// Add adds o to v, bucket by bucket.
func (v *HistogramValue) Add(o HistogramValue) {
	for i := range v.Counts {
		v.Counts[i] += o.Counts[i]
	}
	v.Sum += o.Sum
}
