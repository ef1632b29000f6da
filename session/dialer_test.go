package session_test

import (
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
)

// echoServer accepts and echoes until the test ends.
func echoServer(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Not io.Copy: TCP to TCP splices through a pooled pipe
			// pair that outlives the test's descriptor count.
			go func() { io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}); c.Close() }()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// refusedAddr is a loopback port nobody listens on.
func refusedAddr(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return a
}

// A session dials through the Dialer: a refused backend is reported and
// skipped, the next one serves, and the backends' accounting balances.
func TestDialerRetriesAndRelays(t *testing.T) {
	var fails atomic.Int32
	dead, live := refusedAddr(t), echoServer(t) // before the tester counts descriptors
	tt := newTester(t, session.Config{}, relayListener{fails: &fails})
	require.NoError(t, tt.w.AddCluster("c", backend.RoundRobin))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "dead", Address: dead}))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "live", Address: live}))

	for i := 0; i < 4; i++ {
		c := tt.dial()
		assert.Equal(t, "hello", c.ask(t, "hello"))
		c.Close()
	}
	// Round robin starts on "dead" every other time; each of those dials
	// failed over to "live".
	assert.EqualValues(t, 2, fails.Load())
	require.Eventually(t, func() bool { return tt.status().Sessions == 0 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		c := lp.Clusters().Cluster("c")
		dead, live := c.Backend("dead"), c.Backend("live")
		assert.Equal(t, 0, live.Active(), "every connection released")
		assert.Equal(t, 0, dead.Active())
		assert.EqualValues(t, 4, live.Counters().Connections)
		assert.EqualValues(t, 2, dead.Counters().Failures)
		return nil
	}))
}

// With no cluster to dial, the dial fails at once and the client is
// closed.
func TestDialerNoBackend(t *testing.T) {
	var fails atomic.Int32
	tt := newTester(t, session.Config{}, relayListener{fails: &fails})
	c := tt.dial()
	assert.True(t, c.closedByServer(t))
	var d session.Dialer
	assert.Equal(t, session.DialIdle, d.State())
	assert.Equal(t, "failed", session.DialFailed.String())
	d.Close() // an idle dialer closes quietly
}

// keyListener dials every connection with one key, through a
// consistent-hashing cluster.
type keyListener struct{}

func (keyListener) Protocol() session.Protocol { return "keyed" }
func (keyListener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	rs := &relaySession{Base: session.Base{Token: a.Token, Peer: a.Peer}, front: protocol.NewTCPSocket(a.Fd)}
	rs.d = session.Dialer{Cluster: "c", Key: backend.Key("tenant-42"), UseKey: true}
	rs.p.Init(lp.Pool(), &rs.front, rs.d.Socket())
	rs.d.Dial(lp, rs)
	return rs, nil
}

// With a key, the Dialer picks through the policy's PickKey: every
// connection of one key lands on one backend of a Maglev cluster.
func TestDialerPicksByKey(t *testing.T) {
	addrs := []netip.AddrPort{echoServer(t), echoServer(t), echoServer(t)}
	tt := newTester(t, session.Config{}, keyListener{})
	require.NoError(t, tt.w.AddCluster("c", backend.Maglev))
	for i, a := range addrs {
		require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: string(rune('a' + i)), Address: a}))
	}
	for i := 0; i < 6; i++ {
		c := tt.dial()
		assert.Equal(t, "k", c.ask(t, "k"))
		c.Close()
	}
	require.Eventually(t, func() bool { return tt.status().Sessions == 0 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		used := 0
		for _, b := range lp.Clusters().Cluster("c").Backends() {
			if n := b.Counters().Connections; n > 0 {
				used++
				assert.EqualValues(t, 6, n, "every connection of the key on one backend")
			}
		}
		assert.Equal(t, 1, used)
		return nil
	}))
}

// Take sees each pick before a connect: Taken ends the dial holding only
// the backend's accounting (no connect counted), TakeSkip moves on, and
// Next goes on after a taken connection failed.
func TestDialerTake(t *testing.T) {
	addr := echoServer(t)
	tt := newTester(t, session.Config{}, lineListener{})
	require.NoError(t, tt.w.AddCluster("c", backend.RoundRobin))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "a", Address: addr}))
	require.NoError(t, tt.w.AddBackend("c", backend.Backend{ID: "b", Address: addr}))
	require.NoError(t, tt.w.Exec(func(lp *session.Loop) error {
		var picks []string
		d := session.Dialer{Cluster: "c", Take: func(_ session.ProxySession, b *backend.Backend) session.TakeResult {
			picks = append(picks, b.ID)
			if len(picks) == 1 {
				return session.TakeSkip
			}
			return session.Taken
		}}
		require.Equal(t, session.DialTaken, d.Dial(lp, nil))
		require.Len(t, picks, 2)
		assert.NotEqual(t, picks[0], picks[1], "a skipped backend is not picked again")
		taken := d.Backend()
		assert.Equal(t, picks[1], taken.ID)
		assert.Equal(t, 1, taken.Active(), "a taken connection is active")
		assert.Zero(t, taken.Counters().Connections, "but it is no connect")
		assert.Equal(t, session.DialFailed, d.Next(), "both backends tried")
		assert.ErrorIs(t, d.Err(), session.ErrNoBackend)
		assert.Zero(t, taken.Active(), "Next released it")
		d.Close()
		return nil
	}))
}
