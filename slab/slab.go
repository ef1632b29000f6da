package slab

import (
	"errors"
	"iter"
	"math"
)

// ErrFull is returned when inserting into a slab that has reached its limit.
// It is an ordinary error rather than a panic because running out of session
// slots is an expected overload condition: the caller is meant to refuse the
// new connection and keep serving the ones it already has.
var ErrFull = errors.New("slab: full")

// maxKeys caps the key space so that a key plus one always fits in the int32
// links of the free list, which keeps every entry compact.
const maxKeys = math.MaxInt32

// minGrow is the first allocation of an unbounded slab, so that a handful of
// early inserts does not pay for several tiny reallocations.
const minGrow = 16

// Entries live in pages of pageSize: the first page grows by doubling from
// minGrow (a small slab stays small), then whole pages are added. A big
// slab then holds at most one page of slots beyond its high-water mark,
// where a doubled array held up to as many as were in use, and growing
// copies nothing.
const (
	pageShift = 10
	pageSize  = 1 << pageShift
	pageMask  = pageSize - 1
)

// state tells whether a slot is free, reserved through Vacant, or occupied.
// It is a byte so that it packs next to the int32 link in the entry.
type state uint8

const (
	stateFree state = iota // zero, so freshly allocated memory is free.
	stateReserved
	stateOccupied
)

// entry is one slot. The aux field is shared by the two states that need an
// integer and never at the same time: a free slot stores the key+1 of the next
// free slot (0 ends the list), a reserved slot stores the ticket of the
// reservation that owns it, so that stale Vacant handles can be told apart
// from live ones without a separate generation field.
type entry[T any] struct {
	val   T
	aux   int32
	state state
}

// Slab stores values under small integer keys that it chooses, so an event
// loop can use the key as the token it registers with the poller and get back
// to the owning session in O(1) when the token fires.
//
// Freed keys are reused last-in first-out before the slab grows, which keeps
// keys dense and small. The zero Slab is an empty, unbounded slab ready for
// use. A Slab is not safe for concurrent use: it belongs to one event loop.
type Slab[T any] struct {
	pages    [][]entry[T] // every page holds pageSize slots but the first, while it grows, and a bounded slab's last
	n        int32        // slots handed out so far: keys are below n
	freeHead int32        // key+1 of the most recently freed slot; 0 when none.
	ticket   uint32
	occupied int
	reserved int
	limit    int
}

// New returns an empty slab. limit > 0 bounds the number of keys in use
// (occupied + reserved), which is how a proxy caps its number of concurrent
// sessions; limit == 0 means unbounded (grows as needed). Memory is allocated
// lazily, never beyond the limit. New panics on a negative limit, which can
// only be a configuration bug.
func New[T any](limit int) *Slab[T] {
	if limit < 0 {
		panic("slab: negative limit")
	}
	return &Slab[T]{limit: limit}
}

// claim takes a key out of the free list, or extends the used part of the
// backing array when the free list is empty. The returned slot is free and
// holds the zero value; the caller sets its state.
func (s *Slab[T]) claim() (int32, error) {
	if h := s.freeHead; h != 0 {
		k := h - 1
		s.freeHead = s.slot(k).aux
		return k, nil
	}
	n := int(s.n)
	if (s.limit > 0 && n >= s.limit) || n >= maxKeys {
		return 0, ErrFull
	}
	if n == s.Cap() {
		s.grow()
	}
	s.n++
	return int32(n), nil
}

// grow makes room for one more slot: the first page doubles until it is a
// whole page, then a page is added. Both are clipped to the limit, so that
// a bounded slab never holds memory for slots it may not hand out.
func (s *Slab[T]) grow() {
	room := maxKeys - s.Cap()
	if s.limit > 0 {
		room = s.limit - s.Cap()
	}
	if len(s.pages) == 0 || len(s.pages) == 1 && len(s.pages[0]) < pageSize {
		var first []entry[T]
		if len(s.pages) == 1 {
			first = s.pages[0]
		}
		c := min(max(2*len(first), minGrow), pageSize, len(first)+room)
		grown := make([]entry[T], c)
		copy(grown, first)
		s.pages = append(s.pages[:0], grown)
		return
	}
	s.pages = append(s.pages, make([]entry[T], min(pageSize, room)))
}

// slot is key k's entry; k must be below s.n.
func (s *Slab[T]) slot(k int32) *entry[T] { return &s.pages[k>>pageShift][k&pageMask] }

// release puts an occupied or reserved slot back on the free list. The value
// is cleared so the slab does not keep what it referenced alive.
func (s *Slab[T]) release(k int32) {
	e := s.slot(k)
	var zero T
	e.val = zero
	e.state = stateFree
	e.aux = s.freeHead
	s.freeHead = k + 1
}

// Insert stores v under a new key and returns the key. It reuses the most
// recently freed key before growing, so keys stay small, and it runs in O(1)
// without allocating once the slab has warmed up. At the limit it returns
// ErrFull and leaves the slab unchanged.
func (s *Slab[T]) Insert(v T) (int, error) {
	k, err := s.claim()
	if err != nil {
		return -1, err
	}
	e := s.slot(k)
	e.val = v
	e.state = stateOccupied
	s.occupied++
	return int(k), nil
}

// Vacant reserves a key before the value exists, because a session must know
// its token to register its socket while it is being built. The reservation
// counts against the limit but is invisible to Get, Contains, Len and All
// until it is filled with Vacant.Insert. At the limit it returns ErrFull.
func (s *Slab[T]) Vacant() (Vacant[T], error) {
	k, err := s.claim()
	if err != nil {
		return Vacant[T]{}, err
	}
	s.ticket++
	t := int32(s.ticket)
	e := s.slot(k)
	e.state = stateReserved
	e.aux = t
	s.reserved++
	return Vacant[T]{s: s, key: k, ticket: t}, nil
}

// at returns the slot for key if the key has ever been handed out, nil
// otherwise. The unsigned comparison rejects negative keys too, so lookups
// with a bogus token never panic.
func (s *Slab[T]) at(key int) *entry[T] {
	if uint(key) >= uint(s.n) {
		return nil
	}
	return s.slot(int32(key))
}

// Get returns the value stored under key. It reports false for keys that are
// out of range, free, or reserved but not yet filled, so a late event for a
// closed or half-built session is simply ignored.
func (s *Slab[T]) Get(key int) (T, bool) {
	if e := s.at(key); e != nil && e.state == stateOccupied {
		return e.val, true
	}
	var zero T
	return zero, false
}

// Ptr returns a pointer to the value stored under key, or nil if key is not
// occupied, so large values can be updated in place without a copy. The
// pointer stays valid until the next Insert or Vacant that makes Cap grow;
// after that it refers to a stale copy.
func (s *Slab[T]) Ptr(key int) *T {
	if e := s.at(key); e != nil && e.state == stateOccupied {
		return &e.val
	}
	return nil
}

// Replace overwrites the value under an occupied key, keeping the key, so a
// session can be swapped for its upgraded form (for example after a protocol
// upgrade) without re-registering its token. It reports false and stores
// nothing if key is not occupied.
func (s *Slab[T]) Replace(key int, v T) bool {
	if e := s.at(key); e != nil && e.state == stateOccupied {
		e.val = v
		return true
	}
	return false
}

// Contains reports whether key is occupied; reserved keys do not count
// because no value is there yet.
func (s *Slab[T]) Contains(key int) bool {
	e := s.at(key)
	return e != nil && e.state == stateOccupied
}

// Remove frees key in O(1) and returns the value that was stored there. The
// slot is cleared so the garbage collector can reclaim what the value
// referenced, and the key becomes the next one handed out.
//
// Removing a reserved key frees it too, which invalidates its Vacant handle,
// and reports the zero value and false because no value was stored. Removing
// a free or out-of-range key does nothing and reports false.
func (s *Slab[T]) Remove(key int) (T, bool) {
	var zero T
	e := s.at(key)
	if e == nil {
		return zero, false
	}
	switch e.state {
	case stateOccupied:
		v := e.val
		s.release(int32(key))
		s.occupied--
		return v, true
	case stateReserved:
		s.release(int32(key))
		s.reserved--
	}
	return zero, false
}

// Len returns the number of occupied entries, that is the live sessions;
// reservations are not counted because they hold no value yet.
func (s *Slab[T]) Len() int { return s.occupied }

// Reserved returns the number of keys reserved through Vacant and not yet
// filled or released, which helps spot reservations leaked by an error path.
func (s *Slab[T]) Reserved() int { return s.reserved }

// Cap returns the number of slots allocated so far. It only grows (Clear
// keeps the memory), and a change in Cap is what invalidates pointers
// obtained from Ptr.
func (s *Slab[T]) Cap() int {
	if len(s.pages) == 0 {
		return 0
	}
	return (len(s.pages)-1)*pageSize + len(s.pages[len(s.pages)-1])
}

// Limit returns the bound given to New on keys in use; 0 means unbounded.
func (s *Slab[T]) Limit() int { return s.limit }

// All iterates over the occupied entries in key order, for periodic sweeps
// such as closing zombie sessions.
//
// The iterator re-reads the slab at every step instead of holding on to a
// snapshot, so removing the current entry or any other entry while iterating
// is safe and removed entries are not visited afterwards. Entries inserted
// during iteration may or may not be visited: a key beyond the current
// position is seen, a reused key behind it is not. The values are copies; use
// Ptr or Replace to modify an entry.
func (s *Slab[T]) All() iter.Seq2[int, T] {
	return func(yield func(int, T) bool) {
		for i := int32(0); i < s.n; i++ {
			e := s.slot(i)
			if e.state != stateOccupied {
				continue
			}
			if !yield(int(i), e.val) {
				return
			}
		}
	}
}

// Clear removes every entry and reservation while keeping the allocated
// memory, so a reset loop does not have to reallocate. Keys restart at 0 and
// outstanding Vacant handles become invalid.
func (s *Slab[T]) Clear() {
	for _, p := range s.pages {
		clear(p)
	}
	s.n = 0
	s.freeHead = 0
	s.occupied = 0
	s.reserved = 0
}

// Vacant is a reserved key waiting for its value. It exists so a session can
// be constructed with its own token and then stored under it, without a
// window in which the token is either unknown or mapped to a half-built
// session. It is a small value; copies refer to the same reservation.
type Vacant[T any] struct {
	s      *Slab[T]
	key    int32
	ticket int32
}

// Key returns the reserved key, to be used as the token while the value is
// being built.
func (v Vacant[T]) Key() int { return int(v.key) }

// live reports whether the reservation is still held, that is its slot is
// reserved under this handle's ticket rather than filled, released, or
// reserved again by a later Vacant.
func (v Vacant[T]) live() bool {
	if v.s == nil {
		return false
	}
	e := v.s.at(int(v.key))
	return e != nil && e.state == stateReserved && e.aux == v.ticket
}

// Insert fills the reserved key with val, making it visible to Get and All.
// It panics if the reservation was already filled or released (including by
// Remove or Clear on the slab), because filling a key twice would silently
// overwrite another session.
func (v Vacant[T]) Insert(val T) {
	if !v.live() {
		panic("slab: Vacant.Insert on a reservation that was already used or released")
	}
	e := v.s.slot(v.key)
	e.val = val
	e.state = stateOccupied
	v.s.reserved--
	v.s.occupied++
}

// Release gives the key back unused, for when building the value failed. It
// does nothing if the reservation was already filled or released, so it can
// be deferred right after Vacant to cover every error path.
func (v Vacant[T]) Release() {
	if !v.live() {
		return
	}
	v.s.release(v.key)
	v.s.reserved--
}
