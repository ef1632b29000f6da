package filter

import (
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// Limit configures [RateLimit].
type Limit struct {
	// PerSecond is the rate a key may sustain.
	PerSecond float64
	// Burst is how many requests a key may make at once after a quiet
	// spell. Default: PerSecond rounded up, at least 1.
	Burst int
	// Key names what is limited: by default the client's IP address
	// (the PROXY-protocol source when there was one). Return "" to let a
	// request through unlimited.
	Key func(r *httpproxy.Request) string
	// MaxKeys bounds the keys tracked at once (default 100,000): beyond
	// it, keys idle long enough to be full again are forgotten, and if
	// none is, a new key goes unlimited rather than evicting a limited
	// one.
	MaxKeys int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// RateLimit answers 429 with Retry-After to a key (a client IP by
// default) over its rate: a token bucket per key, refilled at PerSecond
// up to Burst, as HAProxy's stick tables and nginx's limit_req do. One
// RateLimit is one set of buckets: put it in a listener's hooks to limit
// every route together, or in a route's for that route alone. It is safe
// for all the workers of a proxy at once (its buckets are sharded under
// locks held for a few nanoseconds).
func RateLimit(l Limit) httpproxy.Hooks {
	if l.Burst <= 0 {
		l.Burst = max(1, int(math.Ceil(l.PerSecond)))
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = 100_000
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	lim := &limiter{cfg: l, seed: maphash.MakeSeed()}
	for i := range lim.shards {
		lim.shards[i].byAddr = map[netip.Addr]*bucket{}
		lim.shards[i].byKey = map[string]*bucket{}
	}
	return httpproxy.Hooks{Request: lim.check}
}

const shards = 32

type limiter struct {
	cfg    Limit
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]*bucket
	byKey  map[string]*bucket
	swept  time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (l *limiter) check(r *httpproxy.Request) {
	now := l.cfg.Now()
	var sh *shard
	var b *bucket
	if l.cfg.Key == nil {
		a := r.Client().Addr()
		sh = &l.shards[maphash.Comparable(l.seed, a)%shards]
		sh.mu.Lock()
		b = bucketOf(l, sh, sh.byAddr, a, now)
	} else {
		k := l.cfg.Key(r)
		if k == "" {
			return
		}
		sh = &l.shards[maphash.String(l.seed, k)%shards]
		sh.mu.Lock()
		b = bucketOf(l, sh, sh.byKey, k, now)
	}
	if b == nil { // no room: unlimited rather than evict a limited key
		sh.mu.Unlock()
		return
	}
	b.tokens = min(float64(l.cfg.Burst), b.tokens+now.Sub(b.at).Seconds()*l.cfg.PerSecond)
	b.at = now
	ok := b.tokens >= 1
	wait := 0.0
	if ok {
		b.tokens--
	} else {
		wait = (1 - b.tokens) / l.cfg.PerSecond
	}
	sh.mu.Unlock()
	if !ok {
		r.Respond(429, "429 Too Many Requests\n", httpproxy.Field{Name: "Retry-After", Value: strconv.Itoa(max(1, int(math.Ceil(wait))))})
	}
}

// bucketOf is k's bucket in m (one of sh's maps), a full new one if sh
// has room for it, else nil. sh.mu is held.
func bucketOf[K comparable](l *limiter, sh *shard, m map[K]*bucket, k K, now time.Time) *bucket {
	b := m[k]
	if b == nil && l.room(sh, now) {
		b = &bucket{tokens: float64(l.cfg.Burst), at: now}
		m[k] = b
	}
	return b
}

// room reports whether sh may track one more key, forgetting the keys
// whose buckets have refilled (they behave as new ones) when it is full.
// sh.mu is held.
func (l *limiter) room(sh *shard, now time.Time) bool {
	limit := l.cfg.MaxKeys/shards + 1
	if len(sh.byAddr)+len(sh.byKey) < limit {
		return true
	}
	if now.Sub(sh.swept) < time.Second {
		return false // swept a moment ago: do not walk the map per request
	}
	sh.swept = now
	full := float64(l.cfg.Burst) / l.cfg.PerSecond
	for k, b := range sh.byAddr {
		if now.Sub(b.at).Seconds() >= full {
			delete(sh.byAddr, k)
		}
	}
	for k, b := range sh.byKey {
		if now.Sub(b.at).Seconds() >= full {
			delete(sh.byKey, k)
		}
	}
	return len(sh.byAddr)+len(sh.byKey) < limit
}
