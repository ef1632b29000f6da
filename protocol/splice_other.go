//go:build darwin || freebsd || openbsd || dragonfly

package protocol

import "errors"

// spliceSupported: this platform has no splice(2); a PipePool lends
// nothing and pipes relay through buffers.
const spliceSupported = false

func newKernelPipe(int) (*KernelPipe, error) { return nil, errors.ErrUnsupported }

// FillFrom is never called here: no pipe is ever lent.
func (p *KernelPipe) FillFrom(int) (int, SocketResult) { return 0, Error }

// DrainTo is never called here: no pipe is ever lent.
func (p *KernelPipe) DrainTo(int) (int, SocketResult) { return 0, Error }

func (p *KernelPipe) close() {}
