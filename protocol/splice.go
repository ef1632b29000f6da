//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

// A KernelPipe is a pipe(2) through which splice(2) moves a socket's
// bytes to another socket without copying them to user space: the bulk
// path of a relay between two plain TCP sockets (Linux only). It
// belongs to one loop, as a [Buffer] does, and is lent by a [PipePool].
type KernelPipe struct {
	r, w int // the pipe's read and write ends
	n    int // bytes in the pipe
}

// Len is the number of bytes in the pipe.
func (p *KernelPipe) Len() int { return p.n }

// PipePoolConfig sizes a [PipePool].
type PipePoolConfig struct {
	// Max is the number of pipes that may be lent at once; each holds
	// two descriptors. 0 lends none (splicing off).
	Max int
	// Size is the room asked for each pipe. Default 256 KiB: a splice
	// moves up to that much per system call, and pages are only held
	// while bytes are in the pipe.
	Size int
	// Keep is how many returned pipes stay open for reuse. Default 64.
	Keep int
}

// PipePool lends kernel pipes, at most Max at once, to relays that
// splice. Like the buffer [Pool] it belongs to one loop and its pipes
// are lent only while bytes are in flight; running out just means the
// relay copies through a buffer, and is counted.
type PipePool struct {
	cfg     PipePoolConfig
	free    []*KernelPipe
	lent    int
	made    int
	refused uint64
}

// NewPipePool returns a pool; pipes are made on demand. On platforms
// without splice(2), and with Max 0, it lends none.
func NewPipePool(cfg PipePoolConfig) *PipePool {
	if cfg.Size <= 0 {
		cfg.Size = 256 << 10
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 64
	}
	if !spliceSupported {
		cfg.Max = 0
	}
	return &PipePool{cfg: cfg}
}

// Get lends an empty pipe, or returns nil (and counts it) when Max are
// lent or the system refuses a new one (out of descriptors).
func (pp *PipePool) Get() *KernelPipe {
	if pp == nil || pp.cfg.Max <= 0 {
		return nil
	}
	if pp.lent >= pp.cfg.Max {
		pp.refused++
		return nil
	}
	var p *KernelPipe
	if n := len(pp.free); n > 0 {
		p = pp.free[n-1]
		pp.free[n-1] = nil
		pp.free = pp.free[:n-1]
	} else {
		var err error
		if p, err = newKernelPipe(pp.cfg.Size); err != nil {
			pp.refused++
			return nil
		}
		pp.made++
	}
	pp.lent++
	return p
}

// Put takes a pipe back. A pipe with bytes left in it (its relay ended
// mid-transfer) is closed rather than kept; so is one beyond Keep.
// Putting nil is a no-op.
func (pp *PipePool) Put(p *KernelPipe) {
	if p == nil {
		return
	}
	pp.lent--
	if p.n != 0 || len(pp.free) >= pp.cfg.Keep {
		p.close()
		return
	}
	pp.free = append(pp.free, p)
}

// Enabled reports whether the pool may lend pipes at all.
func (pp *PipePool) Enabled() bool { return pp != nil && pp.cfg.Max > 0 }

// Lent is the number of pipes out now.
func (pp *PipePool) Lent() int { return pp.lent }

// Made is the number of pipes made since the pool was made.
func (pp *PipePool) Made() int { return pp.made }

// Refused counts the Gets that lent nothing since the pool was made.
func (pp *PipePool) Refused() uint64 { return pp.refused }

// Close closes the pipes kept for reuse; the worker calls it when it
// stops, after every relay returned its pipes.
func (pp *PipePool) Close() {
	for _, p := range pp.free {
		p.close()
	}
	pp.free = nil
}
