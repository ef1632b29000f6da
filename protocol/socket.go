//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"errors"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// SocketResult says why a socket operation stopped.
type SocketResult uint8

const (
	// Continue: the operation did all it was asked (the buffer is full or
	// everything was written); the socket may still be ready for more.
	Continue SocketResult = iota
	// WouldBlock: the kernel answered EAGAIN. Clear the readiness bit and
	// wait for the next edge.
	WouldBlock
	// Closed: the peer closed in order (a read returned EOF), or can take
	// no more bytes (a write failed with EPIPE or ECONNRESET). Bytes
	// counted before it are valid.
	Closed
	// Error: the peer reset the connection while we were reading
	// (ECONNRESET: an abort, unlike EOF, so a proxy must not pass it on as
	// a clean FIN), or any other failure; the socket is unusable.
	Error
)

// String names the result for logs.
func (r SocketResult) String() string {
	switch r {
	case Continue:
		return "continue"
	case WouldBlock:
		return "would-block"
	case Closed:
		return "closed"
	case Error:
		return "error"
	}
	return "unknown"
}

// Socket is the interface protocol state machines read and write
// through, so a TLS or test socket can stand where a TCP one does.
type Socket interface {
	// Read fills p as far as the kernel allows.
	Read(p []byte) (int, SocketResult)
	// Write writes p as far as the kernel allows.
	Write(p []byte) (int, SocketResult)
	// Writev writes the buffers in order, as far as the kernel allows.
	Writev(bufs [][]byte) (int, SocketResult)
	// CloseWrite sends FIN: the peer reads EOF, the other direction
	// stays open.
	CloseWrite() error
	// Fd is the descriptor to register with the poller.
	Fd() int
	// Close releases the descriptor.
	Close() error
}

// TCPSocket is a non-blocking TCP socket. Embed it by value in a session
// to avoid a separate allocation; its zero value is not usable (use
// [NewTCPSocket] or the descriptors from [Accept] and [Connect]).
type TCPSocket struct {
	fd int
}

// NewTCPSocket wraps a non-blocking descriptor; the socket owns it.
func NewTCPSocket(fd int) TCPSocket { return TCPSocket{fd: fd} }

// Fd is the descriptor, -1 once closed.
func (s *TCPSocket) Fd() int { return s.fd }

// Read reads until p is full (Continue), the kernel has nothing more
// (WouldBlock), the peer closed (Closed) or an error occurs.
//
// A read that returns fewer bytes than asked for also answers WouldBlock
// without a second system call to see EAGAIN: on a stream socket a short
// read means the receive queue was empty at that moment, and any byte
// that arrives later raises a new edge (epoll and kqueue alike). This
// saves one of the three system calls of a small request/response
// exchange. The one thing a short read does not prove is that no FIN is
// queued behind the data: a session must remember an event's
// [eventloop.ReadClosed] bit and keep reading until Closed, because no
// further edge will announce the EOF.
//
// [eventloop.ReadClosed]: https://pkg.go.dev/github.com/sluiceproxy/sluice/eventloop#ReadClosed
func (s *TCPSocket) Read(p []byte) (int, SocketResult) {
	total := 0
	for total < len(p) {
		n, err := read(s.fd, p[total:])
		switch {
		case err == nil && n > 0:
			total += n
			if total < len(p) {
				return total, WouldBlock
			}
		case err == nil:
			return total, Closed
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return total, WouldBlock
		default:
			return total, Error
		}
	}
	return total, Continue
}

// Write writes until p is sent (Continue), the send buffer is full
// (WouldBlock), the peer is gone (Closed) or an error occurs.
func (s *TCPSocket) Write(p []byte) (int, SocketResult) {
	total := 0
	for total < len(p) {
		n, err := write(s.fd, p[total:])
		if n > 0 {
			total += n
		}
		if r, stop := writeResult(err); stop {
			return total, r
		}
	}
	return total, Continue
}

// Writev writes bufs with writev(2), resuming after partial writes, with
// the same results as Write. It does not modify bufs.
func (s *TCPSocket) Writev(bufs [][]byte) (int, SocketResult) {
	total, want := 0, 0
	for _, b := range bufs {
		want += len(b)
	}
	for total < want {
		// Skip what was already written, without allocating.
		rest, skip := bufs, total
		for len(rest) > 0 && skip >= len(rest[0]) {
			skip -= len(rest[0])
			rest = rest[1:]
		}
		var n int
		var err error
		if skip > 0 {
			// A partial buffer heads the rest: write it alone first.
			n, err = write(s.fd, rest[0][skip:])
		} else if s.fd >= SimFD {
			n, err = simWritev(s.fd, rest)
		} else {
			n, err = writev(s.fd, rest)
		}
		if n > 0 {
			total += n
		}
		if r, stop := writeResult(err); stop {
			return total, r
		}
	}
	return total, Continue
}

// read and write go to the kernel, or to the simulation for its
// descriptors.
func read(fd int, p []byte) (int, error) {
	if fd >= SimFD {
		return simRead(fd, p)
	}
	return sysRead(fd, p)
}

func write(fd int, p []byte) (int, error) {
	if fd >= SimFD {
		return simWrite(fd, p)
	}
	return sysWrite(fd, p)
}

// writeResult classifies a write's error: nil and EINTR go on (stop is
// false), the rest end the write with their result.
func writeResult(err error) (r SocketResult, stop bool) {
	switch err {
	case nil, unix.EINTR:
		return Continue, false
	case unix.EAGAIN:
		return WouldBlock, true
	case unix.EPIPE, unix.ECONNRESET:
		return Closed, true
	default:
		return Error, true
	}
}

// CloseWrite shuts down the sending side (FIN); reads go on.
func (s *TCPSocket) CloseWrite() error {
	if s.fd >= SimFD {
		return simCall(s.fd, func(n SimNet) error { return n.Shutdown(s.fd) })
	}
	return wrap("shutdown", unix.Shutdown(s.fd, unix.SHUT_WR))
}

// Close closes the descriptor. Closing twice is harmless.
func (s *TCPSocket) Close() error {
	if s.fd < 0 {
		return nil
	}
	fd := s.fd
	s.fd = -1
	if fd >= SimFD {
		return simCall(fd, func(n SimNet) error { return n.Close(fd) })
	}
	return wrap("close", unix.Close(fd))
}

// SetNoDelay turns Nagle's algorithm off (on=true) or on. Proxies turn it
// off: they write whole messages and latency matters more than packets.
func SetNoDelay(fd int, on bool) error {
	if fd >= SimFD {
		return nil
	}
	v := 0
	if on {
		v = 1
	}
	return wrap("setsockopt", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v))
}

// ListenConfig tunes [Listen].
type ListenConfig struct {
	// Backlog is the accept queue length. Default 1024; the kernel caps
	// it at net.core.somaxconn.
	Backlog int
	// ReusePort sets SO_REUSEPORT so that several loops can each own a
	// listening socket on the same address and the kernel spreads new
	// connections between them.
	ReusePort bool
}

// Listen opens a non-blocking, close-on-exec TCP listening socket on
// addr, with SO_REUSEADDR (a restarted proxy can bind while old
// connections linger in TIME_WAIT). An IPv6 address listens on IPv6
// only, so that an IPv4 listener on the same port can sit beside it.
func Listen(addr netip.AddrPort, cfg ListenConfig) (int, error) {
	if n := simFor(addr); n != nil {
		return n.Listen(addr)
	}
	fd, err := newSocket(addr)
	if err != nil {
		return -1, err
	}
	fail := func(call string, err error) (int, error) {
		unix.Close(fd)
		return -1, wrap(call, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if cfg.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(addr)); err != nil {
		return fail("bind", err)
	}
	backlog := cfg.Backlog
	if backlog <= 0 {
		backlog = 1024
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	return fd, nil
}

// ErrWouldBlock is returned by [Accept] when the accept queue is empty.
var ErrWouldBlock = errors.New("protocol: operation would block")

// Accept takes one connection from a listening socket. The new socket is
// non-blocking and close-on-exec. An empty queue returns ErrWouldBlock;
// connections aborted before they were accepted are skipped. EMFILE and
// ENFILE come back as they are: the caller must stop accepting for a
// while, or the level-triggered backlog keeps it spinning.
func Accept(lfd int) (int, netip.AddrPort, error) {
	for {
		fd, peer, err := acceptSock(lfd)
		switch err {
		case nil:
			return fd, peer, nil
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
			return -1, netip.AddrPort{}, ErrWouldBlock
		default:
			return -1, netip.AddrPort{}, wrap("accept", err)
		}
	}
}

// acceptSock is one accept(2), or the simulation's for its descriptors.
func acceptSock(lfd int) (int, netip.AddrPort, error) {
	if lfd >= SimFD {
		if n := sim(); n != nil {
			return n.Accept(lfd)
		}
		return -1, netip.AddrPort{}, unix.EBADF
	}
	fd, sa, err := accept(lfd)
	return fd, addrPort(sa), err
}

// Connect starts a non-blocking connect to addr. It returns the socket at
// once; the connection is established when the socket turns writable,
// and [ConnectResult] then tells whether it succeeded. A connect that
// completes immediately (loopback may) is reported the same way.
func Connect(addr netip.AddrPort) (int, error) {
	if n := simFor(addr); n != nil {
		return n.Connect(addr)
	}
	fd, err := newSocket(addr)
	if err != nil {
		return -1, err
	}
	for {
		err = unix.Connect(fd, sockaddr(addr))
		if err != unix.EINTR {
			break
		}
	}
	switch err {
	case nil, unix.EINPROGRESS, unix.EALREADY:
		return fd, nil
	default:
		unix.Close(fd)
		return -1, wrap("connect", err)
	}
}

// ConnectResult reads SO_ERROR once a connecting socket turned writable
// (or reported an error): nil means connected.
func ConnectResult(fd int) error {
	if fd >= SimFD {
		return simCall(fd, func(n SimNet) error { return n.ConnectResult(fd) })
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return wrap("getsockopt", err)
	}
	if v != 0 {
		return wrap("connect", unix.Errno(v))
	}
	return nil
}

// LocalAddr is the socket's own address.
func LocalAddr(fd int) (netip.AddrPort, error) {
	if fd >= SimFD {
		return simAddr(fd, SimNet.LocalAddr)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, wrap("getsockname", err)
	}
	return addrPort(sa), nil
}

// PeerAddr is the connected peer's address.
func PeerAddr(fd int) (netip.AddrPort, error) {
	if fd >= SimFD {
		return simAddr(fd, SimNet.PeerAddr)
	}
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.AddrPort{}, wrap("getpeername", err)
	}
	return addrPort(sa), nil
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	ip := a.Addr()
	if ip.Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: ip.As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(a.Port()), Addr: ip.As16()}
	if z := ip.Zone(); z != "" {
		if ifi, err := netInterfaceIndex(z); err == nil {
			sa.ZoneId = uint32(ifi)
		}
	}
	return sa
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func family(a netip.AddrPort) int {
	if a.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func wrap(call string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError(call, err)
}

// Flusher is a Socket whose Write may accept bytes the kernel has not
// taken yet (a TLS socket encrypts a whole chunk, then writes what it
// can). A state machine that writes through a Flusher must call Flush on
// the socket's writable edges while Pending, even when it has nothing new
// to write, and must not treat its output as delivered (a close after a
// last response, a relayed FIN) while Pending.
type Flusher interface {
	// Pending reports whether accepted bytes wait for the kernel.
	Pending() bool
	// Flush writes them: Continue when none is left, WouldBlock when the
	// kernel is full, Closed or Error when the peer is gone.
	Flush() SocketResult
}

// AdoptListener readies a listening socket the process inherited
// (systemd socket activation, a binary upgrade handing its sockets over)
// for a loop: non-blocking and close-on-exec. It fails when fd is not a
// listening socket, and returns the address fd is bound to.
func AdoptListener(fd int) (netip.AddrPort, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return netip.AddrPort{}, wrap("getsockopt", err)
	}
	if v == 0 {
		return netip.AddrPort{}, wrap("adopt", unix.EINVAL)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return netip.AddrPort{}, wrap("fcntl", err)
	}
	unix.CloseOnExec(fd)
	return LocalAddr(fd)
}

// Dup returns a second, close-on-exec descriptor for the socket fd, so
// that two loops can each register the same listening socket.
func Dup(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, wrap("fcntl", err)
	}
	return nfd, nil
}

// SpliceFd is the descriptor splice(2) may move bytes to and from: the
// socket's own, or -1 for a simulated one. A type that wraps the socket
// (TLS) does not have it, so a relay splices only plain TCP.
func (s *TCPSocket) SpliceFd() int {
	if s.fd >= SimFD {
		return -1
	}
	return s.fd
}
