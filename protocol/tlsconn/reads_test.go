package tlsconn

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
)

// countingNet passes a real socket through the simulated-network hook
// (descriptor protocol.SimFD+fd) and counts the reads that reach the
// kernel.
type countingNet struct{ reads int }

func (*countingNet) Owns(netip.AddrPort) bool           { return false }
func (*countingNet) Listen(netip.AddrPort) (int, error) { return -1, unix.EOPNOTSUPP }
func (*countingNet) Accept(int) (int, netip.AddrPort, error) {
	return -1, netip.AddrPort{}, unix.EOPNOTSUPP
}
func (*countingNet) Connect(netip.AddrPort) (int, error) { return -1, unix.EOPNOTSUPP }
func (*countingNet) ConnectResult(int) error             { return nil }
func (*countingNet) LocalAddr(fd int) (netip.AddrPort, error) {
	return protocol.LocalAddr(fd - protocol.SimFD)
}
func (*countingNet) PeerAddr(fd int) (netip.AddrPort, error) {
	return protocol.PeerAddr(fd - protocol.SimFD)
}
func (*countingNet) Shutdown(fd int) error { return unix.Shutdown(fd-protocol.SimFD, unix.SHUT_WR) }
func (*countingNet) Close(fd int) error    { return unix.Close(fd - protocol.SimFD) }
func (*countingNet) Writev(fd int, bufs [][]byte) (int, error) {
	return unix.Write(fd-protocol.SimFD, bytes.Join(bufs, nil))
}
func (c *countingNet) Read(fd int, p []byte) (int, error) {
	c.reads++
	return unix.Read(fd-protocol.SimFD, p)
}

// A record that arrives alone is read with one system call: the short
// read that brought it, once it decrypts to plaintext, proves the queue
// empty, as a short read does for a TCPSocket. A second read to see
// EAGAIN would cost a third more reads on an HTTPS keep-alive exchange.
// A FIN behind the record still ends the connection: the event's
// ReadClosed bit keeps the socket readable until Read says Closed.
func TestSocketReadsARecordInOneSystemCall(t *testing.T) {
	sim := &countingNet{}
	defer protocol.UseSimNet(sim)()
	lfd, addr := listen(t)
	type result struct {
		conn *tls.Conn
		err  error
	}
	dialed := make(chan result, 1)
	go func() {
		c, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
		dialed <- result{c, err}
	}()
	fd := accept(t, lfd)
	pool := NewPool(1, 1)
	defer pool.Close()
	s := NewSocket(protocol.SimFD+fd, testConfig(t), NewScratch(), func() {})
	defer s.Close()

	p, err := eventloop.NewPoller()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Register(fd, 1, eventloop.InterestRead|eventloop.InterestWrite))
	events := eventloop.NewEvents(8)
	var r protocol.Readiness
	finSeen := false // an event carried ReadClosed
	wait := func(what string, until func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !until() {
			require.True(t, time.Now().Before(deadline), "waiting for %s", what)
			n, err := p.Wait(events, 5*time.Millisecond)
			require.NoError(t, err)
			for i := 0; i < n; i++ {
				_, ev := events.Get(i)
				r.Update(ev)
				finSeen = finSeen || ev&eventloop.ReadClosed != 0
			}
		}
	}
	wait("the handshake", func() bool {
		st := s.Handshake(pool, 5*time.Second, &r)
		require.NotEqual(t, Failed, st)
		return st == Established
	})
	c := <-dialed
	require.NoError(t, c.err)
	client := c.conn
	defer client.Close()
	for s.Pending() {
		wait("the handshake's last flight to flush", r.Writable)
		r.Wrote(s.Flush())
	}
	// Drain what the handshake left (none usually): the count starts
	// from a quiet socket.
	buf := make([]byte, 4096)
	n, res := s.Read(buf)
	r.Read(n, res)
	require.Equal(t, 0, n)

	for i := 0; i < 20; i++ {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
		_, err := client.Write(msg)
		require.NoError(t, err)
		wait("the request", r.Readable)
		sim.reads = 0
		n, res := s.Read(buf)
		r.Read(n, res)
		require.Equal(t, msg, buf[:n])
		assert.Equal(t, protocol.WouldBlock, res)
		assert.Equal(t, 1, sim.reads, "system calls to read one record")
		assert.False(t, r.Readable(), "drained")

		n, res = s.Write(buf[:n])
		require.Equal(t, len(msg), n)
		require.Equal(t, protocol.Continue, res)
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(client, buf[:len(msg)])
		require.NoError(t, err)
	}

	// A last record and the FIN behind it, in the queue together: the
	// data first, then Closed, with no edge after the first.
	_, err = client.Write([]byte("last"))
	require.NoError(t, err)
	require.NoError(t, client.NetConn().(*net.TCPConn).CloseWrite())
	wait("the FIN behind the record", func() bool { return finSeen }) // both are queued now
	n, res = s.Read(buf)
	r.Read(n, res)
	require.Equal(t, "last", string(buf[:n]))
	if res == protocol.WouldBlock {
		require.True(t, r.Readable(), "the FIN's edge keeps the socket readable")
		n, res = s.Read(buf)
		r.Read(n, res)
		assert.Equal(t, 0, n)
	}
	assert.Equal(t, protocol.Closed, res)
}
