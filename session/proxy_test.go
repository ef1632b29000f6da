package session_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
)

func TestProxyFansOutToWorkers(t *testing.T) {
	fds, gs := openFDs(t), runtime.NumGoroutine()
	p, err := session.NewProxy(session.ProxyConfig{Workers: 3})
	require.NoError(t, err)
	p.Start()
	addr, err := p.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), lineListener{}, session.ListenConfig{})
	require.NoError(t, err)
	require.NotZero(t, addr.Port())

	// Many connections: SO_REUSEPORT spreads them over the three
	// workers' sockets by their 4-tuple hash.
	var conns []net.Conn
	for i := 0; i < 60; i++ {
		c, err := net.Dial("tcp", addr.String())
		require.NoError(t, err)
		conns = append(conns, c)
		fmt.Fprintf(c, "c%d\n", i)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, strings.ToUpper(fmt.Sprintf("c%d\n", i)), got)
	}
	busy := 0
	for _, w := range p.Workers() {
		st, err := w.Status()
		require.NoError(t, err)
		if st.Sessions > 0 {
			busy++
		}
	}
	assert.GreaterOrEqual(t, busy, 2, "connections reach more than one worker")
	st, err := p.Status()
	require.NoError(t, err)
	assert.Equal(t, 60, st.Sessions)
	assert.Equal(t, 1, st.Listeners)

	// Commands reach every worker.
	require.NoError(t, p.AddCluster("c", backend.RoundRobin))
	require.NoError(t, p.AddBackend("c", backend.Backend{ID: "a", Address: netip.MustParseAddrPort("127.0.0.1:9")}))
	for _, w := range p.Workers() {
		st, err := w.Status()
		require.NoError(t, err)
		assert.Equal(t, 1, st.Clusters)
	}
	assert.Error(t, p.AddBackend("nope", backend.Backend{ID: "a", Address: netip.MustParseAddrPort("127.0.0.1:9")}))

	require.NoError(t, p.RemoveListener(addr))
	_, err = net.DialTimeout("tcp", addr.String(), time.Second)
	assert.Error(t, err)
	for _, c := range conns {
		c.Close()
	}
	require.NoError(t, p.HardStop())
	require.NoError(t, p.Wait())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), gs)
	assert.Equal(t, fds, openFDs(t))
}

func TestProxyHardStopBeforeStart(t *testing.T) {
	fds := openFDs(t)
	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	require.NoError(t, err)
	require.NoError(t, p.HardStop())
	assert.Equal(t, fds, openFDs(t))
}

// PerWorker gives each worker a value of its own, and Each sees them
// all: per-worker counters summed by a reader.
func TestPerWorkerSumsWorkers(t *testing.T) {
	p, err := session.NewProxy(session.ProxyConfig{Workers: 3})
	require.NoError(t, err)
	p.Start()
	defer func() {
		p.HardStop()
		p.Wait()
	}()
	var counts session.PerWorker[atomic.Int64]
	for i := 0; i < 2; i++ { // the second round finds each worker's value again
		require.NoError(t, p.Exec(func(lp *session.Loop) error {
			counts.Get(lp, func() *atomic.Int64 { return new(atomic.Int64) }).Add(1)
			return nil
		}))
	}
	n, total := 0, int64(0)
	counts.Each(func(c *atomic.Int64) { n++; total += c.Load() })
	assert.Equal(t, 3, n)
	assert.Equal(t, int64(6), total)
}
