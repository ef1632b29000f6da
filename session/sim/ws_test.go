package sim_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/sim"
)

// wsBackend answers an upgrade with 101, then echoes bytes (a WebSocket
// server reduced to its transport), and may reset midway.
type wsBackend struct {
	buf      []byte
	p        http1.Parser
	h        http1.Head
	upgraded bool
	got      int
	abortAt  int
}

func (b *wsBackend) Wake(c *sim.Conn) {
	b.buf = append(b.buf, c.Read()...)
	if !b.upgraded {
		ok, err := b.p.Parse(b.buf, http1.Request, &b.h)
		if err != nil || !ok {
			if err != nil {
				c.Abort()
			}
			return
		}
		if !b.h.ConnUpgrade || !b.h.HasUpgrade {
			c.Send([]byte("HTTP/1.1 400 No Upgrade\r\nContent-Length: 0\r\n\r\n"))
			return
		}
		c.Send([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"))
		b.buf, b.upgraded = b.buf[b.h.Len:], true
	}
	b.got += len(b.buf)
	if b.abortAt > 0 && b.got >= b.abortAt {
		c.Abort()
		return
	}
	c.Send(b.buf)
	b.buf = nil
	if c.EOF() {
		c.Close()
	}
}

// wsClient upgrades, then sends its payload in pieces, half-closes and
// checks that the echo is its payload in order, then EOF.
type wsClient struct {
	n        *sim.Net
	id       int
	payload  []byte
	sent     int
	buf      []byte
	p        http1.Parser
	h        http1.Head
	upgraded bool
	got      []byte
	faulted  bool
	done     bool
	conn     *sim.Conn
}

func (c *wsClient) sendSome() {
	if c.done || c.conn.Ended() {
		return
	}
	sendPiece(c.n, c.conn, c.payload, &c.sent, 4096, c.sendSome)
}

func (c *wsClient) Wake(conn *sim.Conn) {
	if c.done {
		return
	}
	c.buf = append(c.buf, conn.Read()...)
	if !c.upgraded {
		ok, err := c.p.Parse(c.buf, http1.Response, &c.h)
		switch {
		case err != nil:
			c.n.Fail("ws client %d: a bad response: %v", c.id, err)
			return
		case ok && c.h.Status != 101:
			if !c.faulted && !c.n.Jumped() {
				c.n.Fail("ws client %d: the upgrade got %d", c.id, c.h.Status)
			}
			c.end()
			return
		case ok:
			c.buf, c.upgraded = c.buf[c.h.Len:], true
			c.sendSome()
		case conn.EOF() || conn.Reset():
			if !c.faulted && !c.n.Jumped() {
				c.n.Fail("ws client %d: closed before the 101", c.id)
			}
			c.end()
			return
		default:
			return
		}
	}
	c.got = append(c.got, c.buf...)
	c.buf = nil
	if !bytes.HasPrefix(c.payload, c.got) {
		c.n.Fail("ws client %d: the tunnel gave bytes not sent, or out of order (at %d of %d)", c.id, len(c.got), len(c.payload))
		return
	}
	switch {
	case conn.Reset():
		if !c.faulted && !c.n.Jumped() {
			c.n.Fail("ws client %d: reset with no fault", c.id)
		}
		c.end()
	case conn.EOF():
		if !c.faulted && !c.n.Jumped() && len(c.got) != len(c.payload) {
			c.n.Fail("ws client %d: EOF after %d of %d bytes, with no fault", c.id, len(c.got), len(c.payload))
		}
		c.end()
	}
}

func (c *wsClient) end() {
	if !c.done {
		c.done = true
		c.n.Tracef("ws client %d ends (sent %d, got %d)", c.id, c.sent, len(c.got))
		c.conn.Close()
	}
}

// runWS: upgrades through httpproxy, then a tunnel both ways.
func runWS(seed uint64) (*sim.Net, error) {
	n, w, err := newRun(seed)
	if err != nil {
		return n, err
	}
	rng := n.Rand()
	be, front := sim.Addr(10, 9001), sim.Addr(1, 80)
	abort := rng.IntN(4) == 0
	n.Serve(be, func(c *sim.Conn) sim.Actor {
		b := &wsBackend{}
		if abort && rng.IntN(2) == 0 {
			b.abortAt = 1 + rng.IntN(8192)
		}
		return b
	})
	var clients []*wsClient
	start := func() {
		must(n, w.AddCluster("c", backend.RoundRobin))
		must(n, w.AddBackend("c", backend.Backend{ID: "b", Address: be}))
		l := httpproxy.NewListener(httpproxy.Config{})
		must(n, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
		_, err := w.AddListener(front, l, session.ListenConfig{})
		must(n, err)
		for i := 0; i < 1+rng.IntN(4); i++ {
			c := &wsClient{n: n, id: i, payload: make([]byte, rng.IntN(1<<uint(rng.IntN(15)))), faulted: abort}
			for j := range c.payload {
				c.payload[j] = byte(rng.Uint32())
			}
			clients = append(clients, c)
			n.After(time.Duration(rng.IntN(20))*time.Millisecond, func() {
				c.conn = n.Dial(front, c)
				c.conn.Send([]byte("GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"))
			})
		}
	}
	done := allDone(&clients, func(c *wsClient) bool { return c.done })
	return n, n.Run(w, start, stopWhenDone(n, w, done))
}

func TestSimWebSocket(t *testing.T) { seeds(t, "ws", runWS) }
