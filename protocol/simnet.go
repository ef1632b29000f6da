//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"net/netip"
	"sync/atomic"
)

// SimFD is the first descriptor number of a simulated network: sockets
// numbered from SimFD up belong to the [SimNet] in use, not to the
// kernel, which never hands out numbers that high.
const SimFD = 1 << 30

// SimNet stands in for the kernel's TCP sockets, so that sessions run
// unchanged over an in-memory network (package session/sim builds one).
// It takes every call on its descriptors (from SimFD up), and Listen and
// Connect calls for the addresses it Owns; everything else still goes to
// the kernel, so real sockets work beside it. Errors are the kernel's
// errno values (unix.EAGAIN, unix.ECONNRESET, unix.EPIPE, ...); a read
// of 0 bytes with no error is the peer's FIN.
type SimNet interface {
	Owns(addr netip.AddrPort) bool
	Listen(addr netip.AddrPort) (int, error)
	Accept(lfd int) (int, netip.AddrPort, error)
	Connect(addr netip.AddrPort) (int, error)
	ConnectResult(fd int) error
	Read(fd int, p []byte) (int, error)
	Writev(fd int, bufs [][]byte) (int, error)
	Shutdown(fd int) error
	Close(fd int) error
	LocalAddr(fd int) (netip.AddrPort, error)
	PeerAddr(fd int) (netip.AddrPort, error)
}

type simHolder struct{ n SimNet }

var simNet atomic.Pointer[simHolder]

// UseSimNet routes n's descriptors and addresses to n until the returned
// function is called. One simulated network at a time per process.
func UseSimNet(n SimNet) (restore func()) {
	prev := simNet.Swap(&simHolder{n})
	return func() { simNet.Store(prev) }
}

func sim() SimNet {
	if h := simNet.Load(); h != nil {
		return h.n
	}
	return nil
}

// simFor is the network that owns addr, if a simulation does.
func simFor(addr netip.AddrPort) SimNet {
	if n := sim(); n != nil && n.Owns(addr) {
		return n
	}
	return nil
}

// errNoSim answers a call on a simulated descriptor with no simulation.
type errNoSim struct{}

func (errNoSim) Error() string { return "protocol: simulated descriptor without a simulation" }

func simRead(fd int, p []byte) (int, error) {
	if n := sim(); n != nil {
		return n.Read(fd, p)
	}
	return -1, errNoSim{}
}

func simWritev(fd int, bufs [][]byte) (int, error) {
	if n := sim(); n != nil {
		return n.Writev(fd, bufs)
	}
	return -1, errNoSim{}
}

func simWrite(fd int, p []byte) (int, error) {
	one := [1][]byte{p}
	return simWritev(fd, one[:])
}

func simAddr(fd int, f func(SimNet, int) (netip.AddrPort, error)) (netip.AddrPort, error) {
	if n := sim(); n != nil {
		return f(n, fd)
	}
	return netip.AddrPort{}, errNoSim{}
}

func simCall(fd int, f func(SimNet) error) error {
	if n := sim(); n != nil {
		return f(n)
	}
	return errNoSim{}
}
