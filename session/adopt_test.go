package session_test

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
)

// moverListener's sessions wait for "move\n", then hand their connection
// to another worker, where a lineSession answers from then on.
type moverListener struct{ to *session.Worker }

func (moverListener) Protocol() session.Protocol { return "mover" }
func (m moverListener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	return &mover{Base: session.Base{Token: a.Token, Peer: a.Peer}, lp: lp, sock: protocol.NewTCPSocket(a.Fd), local: a.Local, to: m.to}, nil
}

type mover struct {
	session.Base
	lp    *session.Loop
	sock  protocol.TCPSocket
	local netip.AddrPort
	to    *session.Worker
	in    []byte
}

func (m *mover) Protocol() session.Protocol                                  { return "mover" }
func (m *mover) UpdateReadiness(eventloop.Token, eventloop.Ready)            {}
func (m *mover) Timeout(eventloop.Token, eventloop.TimerName) session.Result { return session.Continue }
func (m *mover) ShuttingDown() session.Result                                { return session.Close }
func (m *mover) Close()                                                      { m.lp.Release(m.Token, m.sock.Fd()); m.sock.Close() }
func (m *mover) Ready(session.ProxySession) session.Result {
	var buf [16]byte
	n, _ := m.sock.Read(buf[:len("move\n")-len(m.in)]) // not a byte past the line
	m.in = append(m.in, buf[:n]...)
	if !bytes.Equal(m.in, []byte("move\n")) {
		return session.Continue
	}
	fd := m.sock.Fd()
	if err := m.lp.Disown(m, fd); err != nil {
		return session.Close
	}
	go m.to.Adopt(fd, m.Peer, m.local, lineListener{}) // a loop does not wait for another
	return session.Continue
}

// A connection handed from one worker to another keeps working and is
// counted where it lives: the first worker forgets it, the second
// counts it, and the second's soft stop waits for it.
func TestAdoptMovesAConnectionBetweenWorkers(t *testing.T) {
	second := newTester(t, session.Config{}, lineListener{})
	first := newTester(t, session.Config{}, moverListener{to: second.w})
	c := first.dial()
	_, err := c.Write([]byte("move\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return second.status().Sessions == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, "NOW ON THE SECOND", c.ask(t, "now on the second"))
	assert.Equal(t, 0, first.status().Sessions, "the first worker let it go")
	assert.EqualValues(t, 1, first.status().Closed)
	assert.EqualValues(t, 1, second.status().Accepted)
	c.Close() // the second worker closes its end before the first's descriptor count
	require.Eventually(t, func() bool { return second.status().Sessions == 0 }, 5*time.Second, time.Millisecond)
}

// An inherited listening socket serves on every worker of a proxy.
func TestProxyListensOnAnInheritedSocket(t *testing.T) {
	fd, err := protocol.Listen(netip.MustParseAddrPort("127.0.0.1:0"), protocol.ListenConfig{})
	require.NoError(t, err)
	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	require.NoError(t, err)
	p.Start()
	defer func() { p.HardStop(); p.Wait() }()
	addr, err := p.AddListenerFD(fd, lineListener{})
	require.NoError(t, err)
	st, err := p.Workers()[1].Status()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Listeners, "the second worker accepts from a duplicate")
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", addr.String())
		require.NoError(t, err)
		cl := &client{Conn: c, r: bufio.NewReader(c)}
		assert.Equal(t, "HI", cl.ask(t, "hi"))
		c.Close()
	}
	notListening, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	require.NoError(t, err)
	_, err = p.AddListenerFD(notListening, lineListener{}) // refused, and closed
	assert.Error(t, err)
	assert.Nil(t, session.InheritedListeners(), "no LISTEN_FDS here")
}
