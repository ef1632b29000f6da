package sim_test

import (
	"bytes"
	"time"

	"testing"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/sim"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// echo is a backend that sends back what it reads and closes after the
// client's FIN; with abortAt it resets the connection after that many
// bytes instead.
type echo struct {
	got     int
	abortAt int
}

func (e *echo) Wake(c *sim.Conn) {
	b := c.Read()
	e.got += len(b)
	if e.abortAt > 0 && e.got >= e.abortAt {
		c.Abort()
		return
	}
	c.Send(b)
	if c.EOF() {
		c.Close()
	}
}

// tcpClient sends a payload in pieces, half-closes, and checks that the
// bytes it gets back are the ones it sent, in order, then EOF.
type tcpClient struct {
	n        *sim.Net
	id       int
	payload  []byte
	sent     int
	got      []byte
	faulted  bool // a fault aimed at this connection: a short or reset answer is fine
	abortAt  int  // the client resets after sending this much (0: never)
	done     bool
	conn     *sim.Conn
	finished string
}

func (c *tcpClient) sendSome() {
	if c.done || c.conn.Ended() {
		return
	}
	if c.abortAt > 0 && c.sent >= c.abortAt {
		c.conn.Abort()
		c.end("aborted")
		return
	}
	sendPiece(c.n, c.conn, c.payload, &c.sent, 8192, c.sendSome)
}

func (c *tcpClient) end(why string) {
	if !c.done {
		c.done, c.finished = true, why
		c.n.Tracef("client %d ends: %s (sent %d, got %d)", c.id, why, c.sent, len(c.got))
	}
}

func (c *tcpClient) Wake(conn *sim.Conn) {
	if c.done {
		return
	}
	if conn.Refused() {
		c.n.Fail("client %d: the proxy's listener refused the connect", c.id)
		return
	}
	if c.sent == 0 && conn.Established() && len(c.payload) > 0 && c.abortAt != 1 {
		c.sendSome()
	}
	c.got = append(c.got, conn.Read()...)
	if !bytes.HasPrefix(c.payload, c.got) {
		c.n.Fail("client %d: got bytes it did not send, or out of order (at %d of %d)", c.id, len(c.got), len(c.payload))
		return
	}
	faulted := c.faulted || c.n.Jumped() // a clock jump: timeouts may cut any connection
	switch {
	case conn.Reset():
		if !faulted {
			c.n.Fail("client %d: reset with no fault (got %d of %d)", c.id, len(c.got), len(c.payload))
		}
		c.end("reset")
	case conn.EOF():
		if !faulted && len(c.got) != len(c.payload) {
			c.n.Fail("client %d: EOF after %d of %d bytes, with no fault", c.id, len(c.got), len(c.payload))
		}
		conn.Close()
		c.end("eof")
	}
}

// runTCP: clients through tcpproxy to two echo backends, one of which
// may be down; the seed picks sizes, client aborts and backend resets.
func runTCP(seed uint64) (*sim.Net, error) {
	return runRelay(seed, func() (session.Listener, error) { return tcpproxy.NewListener(tcpproxy.Config{Cluster: "c"}) })
}

// runRelay runs the TCP scenario through the listener newListener makes.
func runRelay(seed uint64, newListener func() (session.Listener, error)) (*sim.Net, error) {
	n, w, err := newRun(seed)
	if err != nil {
		return n, err
	}
	rng := n.Rand()
	be1, be2, front := sim.Addr(10, 7001), sim.Addr(11, 7002), sim.Addr(1, 9000)
	abortBackend := rng.IntN(4) == 0
	accept := func(c *sim.Conn) sim.Actor {
		e := &echo{}
		if abortBackend && rng.IntN(2) == 0 {
			e.abortAt = 1 + rng.IntN(4096)
		}
		return e
	}
	n.Serve(be1, accept)
	n.Serve(be2, accept)
	if rng.IntN(3) == 0 {
		n.SetDown(be1, true) // the dialer must go on to be2
	}
	var clients []*tcpClient
	start := func() {
		must(n, w.AddCluster("c", backend.RoundRobin))
		must(n, w.AddBackend("c", backend.Backend{ID: "b1", Address: be1}))
		must(n, w.AddBackend("c", backend.Backend{ID: "b2", Address: be2}))
		l, err := newListener()
		must(n, err)
		_, err = w.AddListener(front, l, session.ListenConfig{})
		must(n, err)
		k := 1 + rng.IntN(6)
		for i := 0; i < k; i++ {
			c := &tcpClient{n: n, id: i, payload: make([]byte, rng.IntN(1<<uint(rng.IntN(16))))}
			for j := range c.payload {
				c.payload[j] = byte(rng.Uint32())
			}
			c.faulted = abortBackend // a backend reset may hit any of them
			if rng.IntN(5) == 0 {
				c.abortAt, c.faulted = 1+rng.IntN(len(c.payload)+1), true
			}
			clients = append(clients, c)
			d := time.Duration(rng.IntN(20)) * time.Millisecond
			n.After(d, func() {
				c.conn = n.Dial(front, c)
				if len(c.payload) == 0 {
					c.conn.CloseWrite()
				}
			})
		}
	}
	done := allDone(&clients, func(c *tcpClient) bool { return c.done })
	return n, n.Run(w, start, stopWhenDone(n, w, done))
}

func must(n *sim.Net, err error) {
	if err != nil {
		n.Fail("setup: %v", err)
	}
}

func TestSimTCP(t *testing.T) { seeds(t, "tcp", runTCP) }
