package protocol

import "errors"

// ErrPoolExhausted is returned when every buffer of a [Pool] is lent out.
var ErrPoolExhausted = errors.New("protocol: buffer pool exhausted")

// Buffer is a fixed-size byte buffer lent by a [Pool]: bytes are written
// into Space, become readable in Bytes, and are consumed from the front.
// It compacts instead of wrapping, so Bytes is always one slice (one
// write system call).
type Buffer struct {
	data []byte
	r, w int
	pool *Pool
}

// Bytes is the unread part.
func (b *Buffer) Bytes() []byte { return b.data[b.r:b.w] }

// Len is the number of unread bytes.
func (b *Buffer) Len() int { return b.w - b.r }

// Empty reports whether nothing is left to read.
func (b *Buffer) Empty() bool { return b.r == b.w }

// Full reports whether Space would be empty.
func (b *Buffer) Full() bool { return b.r == 0 && b.w == len(b.data) }

// Space returns the free room at the end, moving unread bytes to the
// front first when that makes room.
func (b *Buffer) Space() []byte {
	if b.w == len(b.data) && b.r > 0 {
		n := copy(b.data, b.data[b.r:b.w])
		b.r, b.w = 0, n
	}
	return b.data[b.w:]
}

// Fill marks n bytes of Space as written.
func (b *Buffer) Fill(n int) { b.w += n }

// Consume drops n bytes from the front.
func (b *Buffer) Consume(n int) {
	b.r += n
	if b.r >= b.w {
		b.r, b.w = 0, 0
	}
}

// Prepend puts p before the unread bytes (a header to send ahead of a
// payload already read). It reports false, changing nothing, when the
// buffer has no room for it.
func (b *Buffer) Prepend(p []byte) bool {
	if b.Len()+len(p) > len(b.data) {
		return false
	}
	if b.r < len(p) {
		n := copy(b.data[len(p):], b.data[b.r:b.w])
		b.r, b.w = len(p), len(p)+n
	}
	b.r -= len(p)
	copy(b.data[b.r:], p)
	return true
}

// Reset empties the buffer.
func (b *Buffer) Reset() { b.r, b.w = 0, 0 }

// Cap is the buffer's size.
func (b *Buffer) Cap() int { return len(b.data) }

// PoolConfig sizes a [Pool].
type PoolConfig struct {
	// Size of each buffer. Default 16 KiB: one TLS record, a typical
	// header block limit, and enough for loopback throughput.
	Size int
	// Max is the number of buffers that may be lent at once. Default
	// 2 × 10,000 (two per session at the default connection limit).
	Max int
	// Keep is how many returned buffers stay allocated for reuse; above
	// it returned buffers are left to the garbage collector, so memory
	// follows the load down. Default Max / 8.
	Keep int
}

// Pool lends fixed-size buffers, at most Max at once. It belongs to one
// event loop (no locks): sessions borrow a buffer only while bytes are
// in flight and give it back as soon as it is empty, so an idle session
// holds none. Running out is an answered condition (a refused accept, a
// 503, a pause), never a crash, and is counted.
type Pool struct {
	cfg       PoolConfig
	free      []*Buffer
	lent      int
	exhausted uint64
}

// NewPool returns an empty pool; buffers are allocated on demand.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Size <= 0 {
		cfg.Size = 16 << 10
	}
	if cfg.Max <= 0 {
		cfg.Max = 20000
	}
	if cfg.Keep <= 0 {
		cfg.Keep = max(cfg.Max/8, 1)
	}
	return &Pool{cfg: cfg}
}

// Get lends an empty buffer, or returns nil and counts the refusal when
// Max are already lent.
func (p *Pool) Get() *Buffer {
	if p.lent >= p.cfg.Max {
		p.exhausted++
		return nil
	}
	p.lent++
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return &Buffer{data: make([]byte, p.cfg.Size), pool: p}
}

// Put takes a buffer back. Putting nil is a no-op, so callers can give
// back unconditionally.
func (p *Pool) Put(b *Buffer) {
	if b == nil {
		return
	}
	if b.pool != p {
		panic("protocol: buffer returned to a pool that did not lend it")
	}
	b.Reset()
	p.lent--
	if len(p.free) < p.cfg.Keep {
		p.free = append(p.free, b)
	}
}

// Lent is the number of buffers out now.
func (p *Pool) Lent() int { return p.lent }

// Exhausted counts the Gets refused since the pool was made.
func (p *Pool) Exhausted() uint64 { return p.exhausted }

// Size is the size of each buffer.
func (p *Pool) Size() int { return p.cfg.Size }

// Max returns how many buffers may be lent at once.
func (p *Pool) Max() int { return p.cfg.Max }
