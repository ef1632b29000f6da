package sim_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/sim"
)

// h2Stream is one request of an h2Client and what came back for it.
type h2Req struct {
	r       request
	rest    []byte // body not yet accepted by the stream's window
	status  int
	content []byte
	ended   bool // the final response ended, or the stream was reset
	reset   bool
}

// h2Client multiplexes its requests as streams of one HTTP/2 (h2c)
// connection, with the protocol's own client (protocol/h2.ClientConn),
// and checks each stream's answer as the HTTP/1.1 client does.
type h2Client struct {
	w       *httpWorld
	id      int
	reqs    []request
	cc      *h2.ClientConn
	conn    *sim.Conn
	streams map[uint32]*h2Req
	order   []uint32
	opened  int
	partial []byte
	done    bool
}

func (c *h2Client) out() {
	if b := c.cc.Output(); len(b) > 0 {
		c.conn.Send(b)
		c.cc.Consume(len(b))
	}
}

func (c *h2Client) open() {
	for c.opened < len(c.reqs) && c.cc.CanOpen() {
		r := c.reqs[c.opened]
		fields := []h2.HeaderField{
			{Name: ":method", Value: r.method}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "app.example"}, {Name: ":path", Value: "/r/" + r.id},
			{Name: "x-id", Value: r.id},
		}
		if r.method != "GET" {
			fields = append(fields, h2.HeaderField{Name: "content-length", Value: strconv.Itoa(len(r.body))})
		}
		id, err := c.cc.OpenStream(fields, r.method == "GET")
		if err != nil {
			c.w.n.Fail("h2 client %d: open %s: %v", c.id, r.id, err)
			return
		}
		c.opened++
		q := &h2Req{r: r, rest: r.body}
		c.streams[id] = q
		c.order = append(c.order, id)
		c.w.n.Tracef("h2 client %d opens stream %d for %s", c.id, id, r.id)
		if r.method != "GET" {
			c.writeBody(id, q)
		}
	}
}

func (c *h2Client) writeBody(id uint32, q *h2Req) {
	if q.ended || q.rest == nil {
		return
	}
	k := c.cc.WriteData(id, q.rest, true)
	q.rest = q.rest[k:]
	if len(q.rest) == 0 && k > 0 || len(q.r.body) == 0 {
		q.rest = nil
	}
}

func (c *h2Client) Wake(conn *sim.Conn) {
	if c.done {
		return
	}
	if conn.Refused() {
		c.w.n.Fail("h2 client %d: connect refused", c.id)
		return
	}
	if c.cc == nil {
		c.cc = h2.NewClientConn(h2.ClientConfig{}, c)
		c.streams = map[uint32]*h2Req{}
		c.open()
	}
	if b := conn.Read(); len(b) > 0 {
		c.partial = append(c.partial, b...)
		k, err := c.cc.Feed(c.partial, c.w.n.Now())
		if err != nil {
			c.w.n.Fail("h2 client %d: the proxy broke the connection: %v", c.id, err)
			return
		}
		c.partial = append(c.partial[:0], c.partial[k:]...) // Feed takes whole frames
	}
	c.open()
	c.out()
	all := c.opened == len(c.reqs)
	for _, id := range c.order {
		all = all && c.streams[id].ended
	}
	switch {
	case all:
		c.end("all answered")
	case conn.Reset() || conn.EOF():
		for _, id := range c.order {
			if q := c.streams[id]; !q.ended && !c.faultedPlan(q.r.id) && !c.w.n.Jumped() {
				c.w.n.Fail("h2 client %d: the connection ended before %s was answered, with no fault", c.id, q.r.id)
			}
		}
		c.end("closed by the proxy")
	}
}

func (c *h2Client) faultedPlan(id string) bool {
	switch c.w.plans[id] {
	case planHang, planAbort, planGarbage, planEarly:
		return true
	}
	return false
}

func (c *h2Client) end(why string) {
	if !c.done {
		c.done = true
		c.w.n.Tracef("h2 client %d ends: %s", c.id, why)
		c.cc.Close()
		c.out()
		c.conn.Close()
	}
}

// ResponseHeaders implements h2.ClientHandler.
func (c *h2Client) ResponseHeaders(id uint32, fields []h2.HeaderField, endStream, trailers bool) {
	q := c.streams[id]
	if q == nil {
		return
	}
	if !trailers {
		st, _ := strconv.Atoi(fields[0].Value)
		if st >= 200 {
			q.status = st
		}
	}
	if endStream {
		c.finish(id, q)
	}
}

// ResponseData implements h2.ClientHandler.
func (c *h2Client) ResponseData(id uint32, data []byte, endStream bool) {
	q := c.streams[id]
	c.cc.Consumed(id, len(data))
	if q == nil {
		return
	}
	q.content = append(q.content, data...)
	if endStream {
		c.finish(id, q)
	}
}

func (c *h2Client) finish(id uint32, q *h2Req) {
	if q.ended {
		return
	}
	q.ended = true
	c.w.n.Tracef("h2 client %d: stream %d (%s) answered %d", c.id, id, q.r.id, q.status)
	hc := &httpClient{w: c.w, id: c.id}
	hc.check(q.r, q.status, q.content)
}

// StreamReset implements h2.ClientHandler.
func (c *h2Client) StreamReset(id uint32, code h2.ErrCode) {
	q := c.streams[id]
	if q == nil || q.ended {
		return
	}
	q.ended, q.reset = true, true
	c.w.n.Tracef("h2 client %d: stream %d (%s) reset %v", c.id, id, q.r.id, code)
	if code == h2.ErrCodeNo && q.status != 0 {
		return
	}
	if !c.faultedPlan(q.r.id) && !c.w.n.Jumped() {
		c.w.n.Fail("h2 client %d: stream for %s reset (%v) with no fault", c.id, q.r.id, code)
	}
}

// StreamWritable implements h2.ClientHandler.
func (c *h2Client) StreamWritable(id uint32) {
	if q := c.streams[id]; q != nil {
		c.writeBody(id, q)
	}
}

// runH2: HTTP/2 clients (h2c, prior knowledge) multiplexing requests
// through httpproxy to HTTP/1.1 backends whose answers the seed plans.
func runH2(seed uint64) (*sim.Net, error) {
	n, w, err := newRun(seed)
	if err != nil {
		return n, err
	}
	rng := n.Rand()
	world := &httpWorld{n: n, plans: map[string]plan{}, methods: map[string]string{}, processed: map[string]int{}, answered: map[string]int{}}
	be1, be2, front := sim.Addr(10, 8001), sim.Addr(11, 8002), sim.Addr(1, 80)
	accept := func(c *sim.Conn) sim.Actor { return &httpBackend{w: world} }
	n.Serve(be1, accept)
	n.Serve(be2, accept)
	faulty := rng.IntN(3) == 0
	var clients []*h2Client
	start := func() {
		must(n, w.AddCluster("c", backend.RoundRobin))
		must(n, w.AddBackend("c", backend.Backend{ID: "b1", Address: be1}))
		must(n, w.AddBackend("c", backend.Backend{ID: "b2", Address: be2}))
		// Small stream windows in some runs, and bodies beyond the
		// default window in others: request bodies then wait on the
		// proxy's WINDOW_UPDATEs. A body through a one-byte socket
		// window takes minutes of the clock: the client timeouts are
		// longer.
		window := [...]uint32{0, 0, 1024, 4096}[rng.IntN(4)]
		l := httpproxy.NewListener(httpproxy.Config{H2C: true, BackTimeout: 5 * time.Second, RequestTimeout: time.Hour, FrontTimeout: time.Hour, MaxIdlePerBackend: 1 + rng.IntN(4),
			HTTP2: h2.ServerConfig{InitialWindowSize: window}})
		must(n, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
		_, err := w.AddListener(front, l, session.ListenConfig{})
		must(n, err)
		k := 1 + rng.IntN(3)
		for i := 0; i < k; i++ {
			c := &h2Client{w: world, id: i}
			for j := 0; j < 1+rng.IntN(6); j++ {
				id := strconv.Itoa(i) + "-" + strconv.Itoa(j)
				method, body, pl := drawRequest(rng, 18, faulty, planHang, planAbort, planGarbage)
				world.plans[id], world.methods[id] = pl, method
				c.reqs = append(c.reqs, request{id: id, method: method, body: body})
			}
			clients = append(clients, c)
			n.After(time.Duration(rng.IntN(30))*time.Millisecond, func() { c.conn = n.Dial(front, c) })
		}
	}
	done := allDone(&clients, func(c *h2Client) bool { return c.done })
	return n, n.Run(w, start, stopWhenDone(n, w, func() bool {
		if done() {
			return true
		}
		// The world is idle (nothing in flight, nothing scheduled) while
		// clients wait: the clock is about to move to the proxy's next
		// timer. With well-behaved backends no answer waits on a timer;
		// one that does had its wake-up lost, and only the connection's
		// housekeeping would rescue it.
		if !faulty && !n.Jumped() {
			n.Fail("clients wait on an idle world: progress waits on the proxy's timer")
		}
		return false
	}))
}

func TestSimH2(t *testing.T) { seeds(t, "h2", runH2) }
