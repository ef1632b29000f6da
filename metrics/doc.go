// Package metrics counts what a proxy does and exposes it the way
// operators scrape it: Prometheus text through an [http.Handler]
// ([Registry]), or Go values ([Set.Value], [Set.Families]).
//
// Counting stays off the data path's way. Each worker counts in its own
// memory: plain fields its loop owns, or atomic counters and
// [Histogram]s with that one writer (an uncontended add, no lock, no
// allocation). Nothing is shared between workers while they count;
// a scrape sums them. A [Collector] adds a part's counts to a [Set],
// which sums the samples that share a name and labels: each worker adds
// its own, and the set holds the proxy's total.
//
// The text format is written here directly (version 0.0.4, the format
// every Prometheus-compatible scraper reads), rather than through the
// Prometheus client library: that library brings its own registry,
// locking per counter and a dozen modules, where the proxy needs only
// to sum its workers' counters when asked and print them.
//
// Names follow Prometheus conventions: a sluice_ prefix, base units
// (_seconds, _bytes), _total for counters.
package metrics
