package backend

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/metrics"
)

// DefaultWeight is the weight of a backend configured with Weight 0, so that
// a configuration that never mentions weights balances evenly.
const DefaultWeight = 100

// MaxWeight bounds Backend.Weight. It keeps the weighted arithmetic (sums of
// weights, active connections multiplied by weights) far from overflow
// while leaving ample resolution for ratios between backends.
const MaxWeight = 1 << 20

// Status is where a backend stands in the failure-detection cycle. Sessions
// and admin commands read it; only outcome reports and removal change it.
type Status uint8

const (
	// Up is the normal state: the backend takes its share of traffic. It is
	// the zero value, so a new backend starts Up and proves itself on use.
	Up Status = iota
	// Down means the backend failed too many consecutive connects and is in
	// back-off: it gets no traffic except one trial once the back-off has
	// expired, or when the whole cluster is down and Pick fails open.
	Down
	// Removed means the backend was removed from its cluster (or its cluster
	// was removed). Sessions holding it may still report on it, but it is
	// never picked again and it no longer changes state.
	Removed
)

// String returns "up", "down" or "removed", the words used in logs and
// admin output.
func (s Status) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	case Removed:
		return "removed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Counters are lifetime statistics, of a backend (Backend.Counters) or of
// a cluster (Cluster.Counters), for metrics and admin output. They only
// grow. The connect counters are kept by the outcome reports; the traffic
// counters only by what the sessions report with CountRequest and
// CountBytes.
type Counters struct {
	// Connections counts connect attempts (ConnectStarted calls); a
	// reused connection (Acquired) is not one.
	Connections uint64
	// Failures counts failed connects (ConnectFailed calls).
	Failures uint64
	// Downs counts Up to Down transitions.
	Downs uint64
	// Ups counts Down to Up transitions (recoveries).
	Ups uint64
	// Requests counts requests sent to the backend (CountRequest calls):
	// for HTTP one per request, so a keep-alive connection counts many;
	// a TCP session counts none unless it reports its connection as one.
	Requests uint64
	// BytesIn counts the bytes of the client-to-server direction sent to
	// the backend (requests, uploads) and BytesOut those it sent back
	// (responses), as reported by CountBytes: the directions of the
	// listeners' counters and of HAProxy's bin and bout at every level.
	BytesIn, BytesOut uint64
	// Responses counts responses by HTTP status class, [0] for 1xx to [4]
	// for 5xx: those the backend sent (Served calls), and for a cluster
	// also those the proxy made for its requests (Cluster.Answered).
	Responses [5]uint64
	// Connect times successful connects (ConnectSucceeded); FirstByte
	// the wait from sending a request to its response's first byte, and
	// Duration whole exchanges as the client saw them (Served, and for a
	// cluster Answered too).
	Connect, FirstByte, Duration metrics.HistogramValue
}

// add adds o to c, field by field.
func (c *Counters) add(o Counters) {
	c.Connections += o.Connections
	c.Failures += o.Failures
	c.Downs += o.Downs
	c.Ups += o.Ups
	c.Requests += o.Requests
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	for i := range c.Responses {
		c.Responses[i] += o.Responses[i]
	}
	c.Connect.Add(o.Connect)
	c.FirstByte.Add(o.FirstByte)
	c.Duration.Add(o.Duration)
}

// countStatus counts status in its class, when it has one.
func (c *Counters) countStatus(status int) {
	if k := status/100 - 1; k >= 0 && k < len(c.Responses) {
		c.Responses[k]++
	}
}

// Backend is one server of a cluster. The exported fields are its
// configuration: they are copied in by Clusters.AddBackend, normalised there
// (Weight 0 becomes DefaultWeight, an empty StickyID becomes ID) and must be
// treated as read-only afterwards, since balancing uses the values captured
// at that time; to change a backend, remove it and add it again. The
// unexported fields are its live state, owned by the worker's loop.
//
// A *Backend stays valid for as long as anyone holds it: adding or removing
// backends never moves or reuses one, so a session can keep the pointer for
// the lifetime of its connection and report on it even after removal.
type Backend struct {
	// ID identifies the backend within its cluster (Sōzu's backend_id). It
	// must be non-empty and unique in the cluster.
	ID string
	// Address is where sessions connect. It must be a valid address with a
	// non-zero port.
	Address netip.AddrPort
	// Weight is the backend's share of traffic relative to the other
	// backends of the same tier (primaries or backups). 0 means
	// DefaultWeight (100); negative values and values above MaxWeight are
	// rejected. There is no "weight 0 = drain": to drain a backend, remove
	// it, and its existing sessions keep working.
	Weight int
	// Backup marks a backend that takes traffic only when no primary
	// (non-backup) backend is available, like HAProxy's backup servers.
	Backup bool
	// StickyID is the value sticky sessions store (in a cookie, typically)
	// to come back to this backend. Empty means ID. It must be unique in the
	// cluster.
	StickyID string

	cluster  *Cluster      // nil for a Backend not created by AddBackend.
	weight   int64         // normalised Weight, captured at AddBackend.
	keyHash  uint64        // Key(ID), where the hashing policies place it.
	current  int64         // smooth weighted round robin score.
	active   int           // connects in progress plus established connections.
	failures int           // consecutive failed connects.
	status   Status        // Up, Down or Removed.
	trial    bool          // a connect to this Down backend is in flight.
	sick     bool          // failed its active health checks: never picked.
	retryAt  time.Time     // while Down: when the next trial is allowed.
	backoff  time.Duration // while Down: the current back-off, before jitter.
	counters Counters      // lifetime statistics.
}

// Active returns the connections counted against the backend: connects in
// progress and established connections. LeastConnections and PowerOfTwo
// balance on it.
func (b *Backend) Active() int { return b.active }

// Status returns the backend's current state.
func (b *Backend) Status() Status { return b.status }

// Counters returns a snapshot of the backend's lifetime statistics.
func (b *Backend) Counters() Counters { return b.counters }

// RetryAt returns, while the backend is Down, the time from which a trial
// connection is allowed, so admin output and tests can show the back-off
// schedule. It returns the zero time when the backend is not Down.
func (b *Backend) RetryAt() time.Time {
	if b.status != Down {
		return time.Time{}
	}
	return b.retryAt
}

// Available reports whether Pick may send a new connection to the backend
// without failing open: it is Up, or it is Down, its back-off has expired
// and no trial connection is already in flight.
func (b *Backend) Available(now time.Time) bool {
	if b.sick {
		return false
	}
	switch b.status {
	case Up:
		return true
	case Down:
		return !b.trial && !now.Before(b.retryAt)
	}
	return false
}

// SetHealthy records the verdict of active health checks. A backend that
// fails them is never picked, not even failing open: unlike a connect
// failure, a failed check is a positive statement that the backend must
// not get traffic. It reports whether the verdict changed; a change moves
// the cluster's Generation.
func (b *Backend) SetHealthy(up bool) bool {
	if b.sick == !up {
		return false
	}
	b.sick = !up
	if b.cluster != nil && b.status != Removed {
		b.cluster.gen++
	}
	return true
}

// Healthy reports the last health-check verdict (true until a check says
// otherwise).
func (b *Backend) Healthy() bool { return !b.sick }

// ConnectStarted records that a session began connecting to the backend. It
// counts toward Active immediately, so that a burst of picks made before
// any connect completes still spreads under LeastConnections and
// PowerOfTwo. Each call must be followed by exactly one ConnectFailed, or by
// ConnectSucceeded and later Released, or by Released alone if the session
// abandons the connect before knowing its outcome.
//
// A connect to a Down backend is its trial: until its outcome is reported,
// the backend stays unavailable, so one trial at a time probes it.
func (b *Backend) ConnectStarted() {
	b.active++
	b.counters.Connections++
	if b.status == Down {
		b.trial = true
	}
}

// ConnectFailed records that a connect started with ConnectStarted failed,
// which ends it (Active decreases). After Config.MaxFailures consecutive
// failures an Up backend goes Down with a back-off of Config.BackoffBase.
// A Down backend whose back-off had expired has just failed its trial: the
// back-off doubles, up to Config.BackoffMax, and the next trial is
// scheduled from now. Failures of fail-open connects made before the
// back-off expired leave the schedule alone, so a fully-down cluster does
// not push its back-offs to the maximum in a few requests.
func (b *Backend) ConnectFailed(now time.Time) {
	if b.active > 0 {
		b.active--
	}
	b.counters.Failures++
	switch b.status {
	case Up:
		b.failures++
		cfg := b.config()
		if b.failures < cfg.MaxFailures {
			return
		}
		b.status = Down
		b.trial = false
		b.backoff = cfg.BackoffBase
		b.retryAt = now.Add(b.jitter(b.backoff))
		b.counters.Downs++
		b.notify(false)
	case Down:
		b.failures++
		b.trial = false
		if now.Before(b.retryAt) {
			return
		}
		cfg := b.config()
		b.backoff *= 2
		if b.backoff > cfg.BackoffMax || b.backoff <= 0 {
			b.backoff = cfg.BackoffMax
		}
		b.retryAt = now.Add(b.jitter(b.backoff))
	}
}

// ConnectSucceeded records that a connect started with ConnectStarted
// succeeded, took after it started. The connection stays counted in
// Active until Released. It clears the consecutive-failure count and
// brings a Down backend back Up, resetting its back-off: one good connect
// is proof enough that the backend listens again.
func (b *Backend) ConnectSucceeded(now time.Time, took time.Duration) {
	b.counters.Connect.Observe(took)
	b.failures = 0
	if b.status != Down {
		return
	}
	b.status = Up
	b.trial = false
	b.backoff = 0
	b.retryAt = time.Time{}
	b.counters.Ups++
	b.notify(true)
}

// Acquired records that a session took an established connection to the
// backend (an idle pooled one, a stream on a multiplexed connection): it
// is active until Released, but it is no connect, so Connections does not
// grow and the backend's health is not touched.
func (b *Backend) Acquired() { b.active++ }

// Released records that a connection to the backend ended, or that a
// connect was abandoned before its outcome was known: Active decreases. It
// is safe on a removed backend, and an extra call never drives Active
// below zero. Abandoning a connect to a Down backend lets another trial go.
func (b *Backend) Released() {
	if b.active > 0 {
		b.active--
	}
	if b.status == Down {
		b.trial = false
	}
}

// CountRequest records one request sent to the backend. Like the other
// reports it is safe on a removed backend, where it counts toward the
// backend's own Counters only (see Cluster.Counters).
func (b *Backend) CountRequest() { b.counters.Requests++ }

// CountBytes records in bytes sent to the backend (the client-to-server
// direction) and out bytes received from it. Sessions call it as data
// moves, or once when a connection ends; it is two additions either way.
func (b *Backend) CountBytes(in, out uint64) {
	b.counters.BytesIn += in
	b.counters.BytesOut += out
}

// Served records a response the backend sent: its HTTP status (0 for a
// protocol without one), the wait for its first byte once the request
// was sent, and the whole exchange's duration as the client saw it.
func (b *Backend) Served(status int, firstByte, total time.Duration) {
	b.counters.countStatus(status)
	b.counters.FirstByte.Observe(firstByte)
	b.counters.Duration.Observe(total)
}

// State names where the backend stands for operators (metrics, admin
// output): "unhealthy" when its health checks hold it out, else its
// Status ("up", "down", "removed").
func (b *Backend) State() string {
	if b.sick {
		return "unhealthy"
	}
	return b.status.String()
}

// String returns the backend's ID and address, for logs.
func (b *Backend) String() string {
	return b.ID + "@" + b.Address.String()
}

// config returns the settings that govern the backend, the defaults for a
// Backend that no Clusters created.
func (b *Backend) config() *Config {
	if b.cluster != nil && b.cluster.cs != nil {
		return &b.cluster.cs.cfg
	}
	return &defaultConfig
}

// jitter returns d adjusted by a uniformly random amount within ±10%.
func (b *Backend) jitter(d time.Duration) time.Duration {
	j := int64(d / 10)
	if j <= 0 {
		return d
	}
	var r int64
	if b.cluster != nil && b.cluster.rng != nil {
		r = b.cluster.rng.Int64N(2*j + 1)
	} else {
		r = rand.Int64N(2*j + 1)
	}
	return d + time.Duration(r-j)
}

// notify calls the state-change hook, if any.
func (b *Backend) notify(up bool) {
	if b.cluster == nil || b.cluster.cs == nil {
		return
	}
	if f := b.cluster.cs.cfg.OnStateChange; f != nil {
		f(b.cluster.ID, b, up)
	}
}
