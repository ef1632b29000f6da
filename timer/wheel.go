package timer

import (
	"math"
	"math/bits"
	"time"
)

const (
	// defaultTick is the tick used when Config.Tick is not set.
	defaultTick = time.Millisecond
	// minTick is the finest tick accepted: the poller's wait timeout has
	// millisecond resolution, so a finer tick only adds work.
	minTick = time.Millisecond
	// defaultSlots is the slot count used when Config.Slots is not set.
	defaultSlots = 4096
	// minSlots keeps the occupancy bitmap made of whole 64-bit words.
	minSlots = 64
	// maxSlots bounds the memory of the slot array (16 Mi slots).
	maxSlots = 1 << 24
	// maxScan bounds the occupied slots NextDeadline examines.
	maxScan = 64
)

// Sentinels for intrusive list links and for node.list.
const (
	nilIdx      int32 = -1 // no node
	listExpired int32 = -1 // node.list: on the expired FIFO
	listFree    int32 = -2 // node.list: on the free list
)

// Config configures a Wheel. The zero Config is valid and gives a 1 ms tick,
// 4096 slots and the wall clock.
type Config struct {
	// Tick is the granularity of the wheel: timers are due on tick
	// boundaries measured from the clock's time at New. Zero or negative
	// means the default, 1 ms. Values below 1 ms are raised to 1 ms,
	// because the poller's wait timeout (epoll_wait) has millisecond
	// resolution: a finer tick cannot make wake-ups more precise, it only
	// multiplies the per-tick work and the slots needed to cover a turn.
	// Proxy timeouts are seconds, so 1 ms keeps "never early, at most one
	// tick late" tight while the work per tick stays tiny.
	Tick time.Duration

	// Slots is the number of slots in the wheel, rounded up to a power of
	// two so the slot of a tick is a mask. Zero or negative means the
	// default, 4096 (one turn is 4.096 s at 1 ms). Values are clamped to
	// [64, 1<<24]: 64 keeps the occupancy bitmap made of whole words, the
	// upper bound keeps the slot array's memory reasonable. Timers farther
	// than one turn are fine: they wait in their slot for their turn. A
	// turn at least as long as the common timeout keeps slots short.
	Slots int

	// Now is the clock read by New (to fix the origin), Schedule, Reset
	// and the Now method. Nil means time.Now. Tests inject a virtual clock
	// so they never sleep.
	Now func() time.Time
}

// withDefaults returns c with every unset field replaced by its default and
// every set field brought into its documented range.
func (c Config) withDefaults() Config {
	if c.Tick < minTick {
		if c.Tick <= 0 {
			c.Tick = defaultTick
		} else {
			c.Tick = minTick
		}
	}
	switch {
	case c.Slots <= 0:
		c.Slots = defaultSlots
	case c.Slots < minSlots:
		c.Slots = minSlots
	case c.Slots > maxSlots:
		c.Slots = maxSlots
	}
	c.Slots = 1 << bits.Len(uint(c.Slots-1))
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Handle identifies one scheduled timer, so the owner can cancel or reset
// it in O(1). The zero Handle is never valid. A handle goes stale when its
// timer is returned by Poll or cancelled; stale handles are detected by a
// generation counter and operations on them return false, so they never
// affect a newer timer that reuses the same node. (The generation is 32
// bits: a handle kept across four billion reuses of one node could alias;
// owners drop their handle when the timer fires or is cancelled.) A handle
// is meaningful only to the wheel that issued it.
type Handle struct {
	idx int32  // index of the node in Wheel.nodes
	gen uint32 // generation of the node when scheduled; never 0
}

// IsZero reports whether h is the zero Handle, which owners use to mean
// "no timer scheduled".
func (h Handle) IsZero() bool { return h == Handle{} }

// node is one timer. Nodes live in one slice and link to each other by
// index, so scheduling allocates nothing once the slice has grown.
type node[K any] struct {
	key      K
	deadline int64 // absolute tick at which the timer is due
	prev     int32 // previous node in its list, or nilIdx
	next     int32 // next node in its list (or free list), or nilIdx
	list     int32 // slot index, listExpired or listFree
	gen      uint32
}

// list is the head and tail of an intrusive doubly-linked list of nodes.
type list struct {
	head, tail int32
}

// slot is one bucket of the wheel with the minimum deadline of its timers.
type slot struct {
	l     list
	min   int64 // minimum deadline in l; meaningful only when !stale
	stale bool  // min may be too low: recompute by walking l
}

// Wheel is a hashed timing wheel keyed by K (a session or socket token).
// It gives O(1) Schedule, Cancel and Reset, returns expired keys through
// Poll and tells the event loop how long to sleep through NextDeadline.
//
// A Wheel is not safe for concurrent use: it is owned by one event loop,
// which is the only goroutine touching it, so it needs no locks. Create it
// with New; the zero Wheel is not usable.
type Wheel[K any] struct {
	nodes []node[K]
	free  int32 // head of the free list, linked through node.next

	slots []slot
	occ   []uint64 // bit s set when slot s is non-empty
	mask  int64    // len(slots) - 1

	expired list  // FIFO of timers due but not yet returned by Poll
	cursor  int64 // last tick processed by Poll
	count   int   // pending timers, in slots or on expired

	tick    time.Duration
	maxTick int64 // deadlines are clamped here so tick*Tick cannot overflow
	origin  time.Time
	now     func() time.Time

	// cacheTick is a lower bound of every deadline in the slots, and it is
	// greater than cursor, while cacheOK is set. It spares NextDeadline the
	// scan while the earliest timer does not change.
	cacheOK   bool
	cacheTick int64
}

// New returns an empty wheel configured by cfg. Its origin, from which
// ticks are counted, is cfg.Now() at this call.
func New[K any](cfg Config) *Wheel[K] {
	cfg = cfg.withDefaults()
	w := &Wheel[K]{
		free:    nilIdx,
		slots:   make([]slot, cfg.Slots),
		occ:     make([]uint64, cfg.Slots/64),
		mask:    int64(cfg.Slots - 1),
		expired: list{head: nilIdx, tail: nilIdx},
		tick:    cfg.Tick,
		maxTick: int64(math.MaxInt64 / cfg.Tick),
		now:     cfg.Now,
	}
	for i := range w.slots {
		w.slots[i].l = list{head: nilIdx, tail: nilIdx}
	}
	w.origin = w.now()
	return w
}

// Schedule starts a timer for key that fires no earlier than Now()+d, and
// at most one tick after that if Poll is called on every tick. A d of zero
// or less means "at the next Poll that reaches the next tick". It is O(1)
// and allocates only while the node slice grows.
func (w *Wheel[K]) Schedule(key K, d time.Duration) Handle {
	dl := w.deadline(d)
	if w.count == 0 {
		// An empty wheel has no earliest timer to keep a bound for.
		w.cacheOK = false
	}
	i := w.alloc()
	n := &w.nodes[i]
	n.key = key
	n.deadline = dl
	w.insert(i)
	w.count++
	return Handle{idx: i, gen: n.gen}
}

// Cancel stops the timer of h, even when it has expired but Poll has not
// returned it yet (a session may close in the middle of a timeout batch).
// It is O(1) and returns false when h is stale or zero.
func (w *Wheel[K]) Cancel(h Handle) bool {
	i, ok := w.lookup(h)
	if !ok {
		return false
	}
	w.detach(i)
	w.release(i)
	w.count--
	return true
}

// Reset moves the timer of h to Now()+d, as Schedule would, and keeps h
// valid. This is what a session does on activity (idle timeouts). It is
// O(1) and returns false when h is stale or zero; the caller then
// schedules anew.
func (w *Wheel[K]) Reset(h Handle, d time.Duration) bool {
	i, ok := w.lookup(h)
	if !ok {
		return false
	}
	dl := w.deadline(d)
	w.detach(i)
	w.nodes[i].deadline = dl
	w.insert(i)
	return true
}

// Pending reports whether the timer of h is still scheduled, including
// expired but not yet returned by Poll, so an owner can tell whether its
// handle still means something.
func (w *Wheel[K]) Pending(h Handle) bool {
	_, ok := w.lookup(h)
	return ok
}

// Poll returns the next expired key, one per call, each timer exactly once;
// it returns false when nothing more is due at now. Call it repeatedly until
// it returns false. A timer is due when its deadline tick is at most
// floor((now-origin)/Tick), so it never fires early.
//
// Expired keys come in deadline order, and in scheduling (or last Reset)
// order within a tick, except after a gap of more than one turn between
// polls, when every slot is visited once and keys come in slot order.
// Timers scheduled while draining are due at the next tick at the
// earliest, so draining with the same now always ends.
func (w *Wheel[K]) Poll(now time.Time) (K, bool) {
	if w.expired.head == nilIdx {
		if t := w.floorTick(now); t > w.cursor {
			w.advance(t)
		}
		if w.expired.head == nilIdx {
			var zero K
			return zero, false
		}
	}
	i := w.expired.head
	w.unlink(&w.expired, i)
	key := w.nodes[i].key
	w.release(i)
	w.count--
	return key, true
}

// NextDeadline tells the event loop when it must wake next; it returns
// false when no timer is pending. The time may be early (a lower bound the
// loop re-checks by polling) but never later than the tick at which the
// earliest pending timer becomes due. It is the cursor's time when expired
// timers wait to be returned by Poll. It is exact when the earliest timer is
// due within the current turn and found among the first 64 occupied slots.
//
// It is cheap enough to call on every loop iteration: the answer is cached
// until the earliest timer changes, and computing it examines at most 64
// occupied slots found through a bitmap, never every timer.
func (w *Wheel[K]) NextDeadline() (time.Time, bool) {
	if w.count == 0 {
		return time.Time{}, false
	}
	if w.expired.head != nilIdx {
		return w.tickTime(w.cursor), true
	}
	if !w.cacheOK {
		w.cacheTick = w.scan()
		w.cacheOK = true
	}
	return w.tickTime(w.cacheTick), true
}

// Len returns the number of pending timers, counting expired timers that
// Poll has not returned yet; it bounds the work the loop has left.
func (w *Wheel[K]) Len() int { return w.count }

// Now returns the time of the configured clock, so callers compute
// timeouts against the same clock the wheel uses.
func (w *Wheel[K]) Now() time.Time { return w.now() }

// deadline returns the tick at which a timer of duration d scheduled now is
// due: ceil((Now()+d-origin)/Tick), and at least cursor+1 so the timer
// never lands in a tick already processed.
func (w *Wheel[K]) deadline(d time.Duration) int64 {
	if d < 0 {
		d = 0
	}
	el := w.now().Sub(w.origin)
	if el > math.MaxInt64-d {
		el = math.MaxInt64
	} else {
		el += d
	}
	t := int64(el / w.tick)
	if el > 0 && el%w.tick != 0 {
		t++
	}
	t = min(t, w.maxTick)
	if t <= w.cursor {
		t = w.cursor + 1
	}
	return t
}

// floorTick returns the last tick fully reached at now, or -1 before the
// origin.
func (w *Wheel[K]) floorTick(now time.Time) int64 {
	el := now.Sub(w.origin)
	if el < 0 {
		return -1
	}
	return int64(el / w.tick)
}

// tickTime returns the time at which tick t starts.
func (w *Wheel[K]) tickTime(t int64) time.Time {
	return w.origin.Add(time.Duration(t) * w.tick)
}

// lookup returns the node of h when h is valid.
func (w *Wheel[K]) lookup(h Handle) (int32, bool) {
	if h.gen == 0 || h.idx < 0 || int(h.idx) >= len(w.nodes) {
		return nilIdx, false
	}
	n := &w.nodes[h.idx]
	if n.gen != h.gen || n.list == listFree {
		return nilIdx, false
	}
	return h.idx, true
}

// alloc takes a node from the free list, growing the slice when empty.
func (w *Wheel[K]) alloc() int32 {
	if i := w.free; i != nilIdx {
		w.free = w.nodes[i].next
		return i
	}
	if len(w.nodes) >= math.MaxInt32 {
		panic("timer: too many timers")
	}
	w.nodes = append(w.nodes, node[K]{gen: 1, prev: nilIdx, next: nilIdx, list: listFree})
	return int32(len(w.nodes) - 1)
}

// release puts node i on the free list and bumps its generation so every
// handle to it goes stale. The key is cleared so the wheel does not keep
// what it references alive.
func (w *Wheel[K]) release(i int32) {
	n := &w.nodes[i]
	var zero K
	n.key = zero
	n.gen++
	if n.gen == 0 {
		n.gen = 1
	}
	n.list = listFree
	n.prev = nilIdx
	n.next = w.free
	w.free = i
}

// pushBack appends node i to l.
func (w *Wheel[K]) pushBack(l *list, i int32) {
	n := &w.nodes[i]
	n.next = nilIdx
	n.prev = l.tail
	if l.tail == nilIdx {
		l.head = i
	} else {
		w.nodes[l.tail].next = i
	}
	l.tail = i
}

// unlink removes node i from l.
func (w *Wheel[K]) unlink(l *list, i int32) {
	n := &w.nodes[i]
	if n.prev == nilIdx {
		l.head = n.next
	} else {
		w.nodes[n.prev].next = n.next
	}
	if n.next == nilIdx {
		l.tail = n.prev
	} else {
		w.nodes[n.next].prev = n.prev
	}
	n.prev, n.next = nilIdx, nilIdx
}

// insert puts node i, whose deadline is set, into the slot of its deadline,
// keeping the occupancy bit, the slot minimum and the cached bound right.
func (w *Wheel[K]) insert(i int32) {
	n := &w.nodes[i]
	s := n.deadline & w.mask
	sl := &w.slots[s]
	if sl.l.head == nilIdx {
		w.occ[s>>6] |= 1 << (s & 63)
		sl.min, sl.stale = n.deadline, false
	} else if !sl.stale && n.deadline < sl.min {
		sl.min = n.deadline
	}
	n.list = int32(s)
	w.pushBack(&sl.l, i)
	if w.cacheOK && n.deadline < w.cacheTick {
		w.cacheTick = n.deadline
	}
}

// detach removes node i from its slot or from the expired list. Removing a
// slot's minimum marks it stale rather than walking the slot now; removing
// the cached earliest deadline drops the cache so it is not needlessly
// early.
func (w *Wheel[K]) detach(i int32) {
	n := &w.nodes[i]
	if n.list == listExpired {
		w.unlink(&w.expired, i)
		return
	}
	s := n.list
	sl := &w.slots[s]
	w.unlink(&sl.l, i)
	if sl.l.head == nilIdx {
		w.occ[s>>6] &^= 1 << (s & 63)
	} else if !sl.stale && n.deadline == sl.min {
		sl.stale = true
	}
	if w.cacheOK && n.deadline == w.cacheTick {
		w.cacheOK = false
	}
}

// slotMin returns the minimum deadline in non-empty slot s, walking the
// slot only when its recorded minimum is stale.
func (w *Wheel[K]) slotMin(s int) int64 {
	sl := &w.slots[s]
	if sl.stale {
		m := int64(math.MaxInt64)
		for i := sl.l.head; i != nilIdx; i = w.nodes[i].next {
			m = min(m, w.nodes[i].deadline)
		}
		sl.min, sl.stale = m, false
	}
	return sl.min
}

// findOccupied returns the smallest d in [0, n) such that slot
// (start+d) mod Slots is non-empty, or -1. It reads the bitmap a word at a
// time, so scanning the whole wheel costs Slots/64 word reads.
func (w *Wheel[K]) findOccupied(start, n int) int {
	mask := int(w.mask)
	s := start & mask
	for d := 0; d < n; {
		word := w.occ[s>>6] >> (s & 63)
		if word != 0 {
			if d += bits.TrailingZeros64(word); d < n {
				return d
			}
			return -1
		}
		step := 64 - s&63
		d += step
		s = (s + step) & mask
	}
	return -1
}

// advance processes every tick after cursor up to target, moving the
// timers due by then onto the expired list.
func (w *Wheel[K]) advance(target int64) {
	nslots := len(w.slots)
	if target-w.cursor >= int64(nslots) {
		// More than a turn elapsed: visit each occupied slot once, starting
		// after the cursor so keys come out roughly in time order.
		start := int((w.cursor + 1) & w.mask)
		for k := 0; k < nslots; {
			d := w.findOccupied(start+k, nslots-k)
			if d < 0 {
				break
			}
			w.expireSlot((start+k+d)&int(w.mask), target)
			k += d + 1
		}
	} else {
		// Less than a turn: visit the occupied slots tick by tick; each slot
		// holds at most one tick of this range, so only timers due exactly
		// then move and the expired list stays in deadline order.
		for pos := w.cursor; pos < target; {
			d := w.findOccupied(int((pos+1)&w.mask), int(target-pos))
			if d < 0 {
				break
			}
			t := pos + 1 + int64(d)
			w.expireSlot(int(t&w.mask), t)
			pos = t
		}
	}
	w.cursor = target
	if w.cacheOK && w.cacheTick <= target {
		w.cacheOK = false
	}
}

// expireSlot moves the timers of slot s due by tick upTo onto the expired
// list, in slot order, and recomputes the slot's minimum on the way. A slot
// whose known minimum is later is skipped without walking it: timers of
// later turns cost nothing per tick.
func (w *Wheel[K]) expireSlot(s int, upTo int64) {
	sl := &w.slots[s]
	if !sl.stale && sl.min > upTo {
		return
	}
	m := int64(math.MaxInt64)
	for i := sl.l.head; i != nilIdx; {
		n := &w.nodes[i]
		next := n.next
		if n.deadline <= upTo {
			w.unlink(&sl.l, i)
			n.list = listExpired
			w.pushBack(&w.expired, i)
		} else {
			m = min(m, n.deadline)
		}
		i = next
	}
	if sl.l.head == nilIdx {
		w.occ[s>>6] &^= 1 << (s & 63)
	} else {
		sl.min, sl.stale = m, false
	}
}

// scan computes NextDeadline's tick when no expired timer waits. It walks
// the occupied slots forward from cursor+1. Every slot's minimum is either
// the tick being looked at (due in this turn, and then it is the earliest
// timer of all, since earlier slots hold only later turns) or at least a
// turn later. After maxScan occupied slots without such a hit it returns
// the next occupied slot's tick, a lower bound for everything unexamined.
func (w *Wheel[K]) scan() int64 {
	best := int64(math.MaxInt64)
	pos := w.cursor
	left := len(w.slots) // ticks cursor+1 .. cursor+Slots
	for examined := 0; ; examined++ {
		d := w.findOccupied(int((pos+1)&w.mask), left)
		if d < 0 {
			return best
		}
		t := pos + 1 + int64(d)
		if examined == maxScan {
			return min(best, t)
		}
		m := w.slotMin(int(t & w.mask))
		if m <= t {
			return m
		}
		best = min(best, m)
		left -= d + 1
		pos = t
	}
}
