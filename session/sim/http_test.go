package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/sim"
)

// What a backend does with a request, on its first attempt (a retry is
// answered normally).
type plan uint8

const (
	planOK      plan = iota
	planChunked      // the response is chunked, with a trailer
	planClose        // the response ends the backend connection (Connection: close)
	planHang         // no answer: the proxy's back timeout answers 504
	planAbort        // the backend resets after reading the request: 502, or a retry for an idempotent one
	planGarbage      // an invalid response: 502
	planEarly        // the answer comes before the request body is read (a 413 of the backend's own)
)

var planNames = [...]string{"ok", "chunked", "close", "hang", "abort", "garbage", "early"}

// httpWorld is the shared book of an HTTP scenario: each request's plan
// and how often the backends processed it.
type httpWorld struct {
	n         *sim.Net
	plans     map[string]plan
	methods   map[string]string
	processed map[string]int
	answered  map[string]int
	tight     bool // the worker's buffer pool is tiny: a 503 may answer anything
	stopped   bool // a soft stop began while clients were at work
}

func expected(id string, body []byte) string {
	h := fnv.New32a()
	h.Write(body)
	return fmt.Sprintf("ok %s %d %08x", id, len(body), h.Sum32())
}

// httpBackend serves requests on one connection: it parses them with
// http1, reads each body whole, and answers as the request's plan says.
type httpBackend struct {
	w        *httpWorld
	buf      []byte
	p        http1.Parser
	h        http1.Head
	body     http1.Body
	in       []byte // the body's content so far
	head     bool   // a head is parsed, its body being read
	id       string
	done     bool
	draining bool // answered early: reads what still comes, then closes
}

func (b *httpBackend) Wake(c *sim.Conn) {
	if b.done {
		return
	}
	if b.draining {
		// A lingering close, as servers do: a close with the request's
		// body unread would be a reset that loses the answer.
		c.Read()
		if c.EOF() || c.Reset() {
			c.Close()
			b.done = true
		}
		return
	}
	b.buf = append(b.buf, c.Read()...)
	for !b.done {
		if !b.head {
			ok, err := b.p.Parse(b.buf, http1.Request, &b.h)
			if err != nil {
				b.w.n.Fail("backend: the proxy sent a bad request head: %v: %q", err, b.buf)
				return
			}
			if !ok {
				break
			}
			head := b.buf[:b.h.Len]
			if i := b.h.FieldIndex(head, "x-id", 0); i >= 0 {
				b.id = string(b.h.Fields[i].Value.Of(head))
			} else {
				b.w.n.Fail("backend: a request without its X-Id: %q", head)
				return
			}
			kind, n := b.h.Body(false, false)
			b.body.Init(kind, n, http1.Limits{})
			b.buf, b.head, b.in = b.buf[b.h.Len:], true, nil
			b.p.Reset()
			b.w.processed[b.id]++
			attempt := b.w.processed[b.id]
			pl := b.w.plans[b.id]
			if attempt > 1 {
				if m := b.w.methods[b.id]; !idempotent(m) && b.w.plans[b.id] == planAbort {
					b.w.n.Fail("request %s (%s) processed twice: a non-idempotent request was replayed", b.id, m)
					return
				}
				pl = planOK
			}
			b.w.n.Tracef("backend: request %s attempt %d plan %s", b.id, attempt, planNames[pl])
			switch pl {
			case planHang:
				b.done = true // reads nothing more, answers nothing; the proxy gives up
				return
			case planAbort:
				c.Abort()
				b.done = true
				return
			case planGarbage:
				c.Send([]byte("HTTP/1.1 2x0 Nonsense\r\n\r\n"))
				c.Close()
				b.done = true
				return
			case planEarly:
				c.Send([]byte("HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
				c.CloseWrite()
				b.draining = true
				return
			}
		}
		n, data, done, err := b.body.Decode(b.buf)
		if err != nil {
			b.w.n.Fail("backend: the proxy sent a bad body: %v", err)
			return
		}
		b.in = append(b.in, data...)
		b.buf = b.buf[n:]
		if !done {
			if n == 0 {
				break
			}
			continue
		}
		b.head = false
		pl := b.w.plans[b.id]
		if b.w.processed[b.id] > 1 {
			pl = planOK
		}
		msg := expected(b.id, b.in)
		switch pl {
		case planChunked:
			c.Send([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n%x\r\n%s\r\n0\r\nX-Sum: 1\r\n\r\n", len(msg), msg)))
		case planClose:
			c.Send([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)))
			c.Close()
			b.done = true
			return
		default:
			c.Send([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)))
		}
	}
	if c.EOF() || c.Reset() {
		c.Close()
		b.done = true
	}
}

// idempotent: RFC 9110 §9.2.2, what a proxy may send again.
func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// request is one request a client sends.
type request struct {
	id     string
	method string
	body   []byte
	wire   []byte
}

// httpClient sends its requests on one connection, one at a time or
// pipelined, and checks each response: the backend's answer for its
// request, or an error the proxy gave because of the request's plan.
type httpClient struct {
	w        *httpWorld
	id       int
	reqs     []request
	sent     int // requests written
	answered int
	pipeline bool
	buf      []byte
	p        http1.Parser
	h        http1.Head
	body     http1.Body
	content  []byte
	inBody   bool
	status   int
	closing  bool // the last response said Connection: close
	done     bool
	conn     clientConn
}

// clientConn is what a client reads and writes: a connection of the
// simulated network, or TLS over one.
type clientConn interface {
	Read() []byte
	Send(p []byte)
	EOF() bool
	Reset() bool
	Refused() bool
	Close()
}

func (c *httpClient) send() {
	for c.sent < len(c.reqs) && (c.pipeline || c.sent == c.answered) {
		c.w.n.Tracef("client %d sends %s", c.id, c.reqs[c.sent].id)
		c.conn.Send(c.reqs[c.sent].wire)
		c.sent++
	}
}

func (c *httpClient) end(why string) {
	if !c.done {
		c.done = true
		c.w.n.Tracef("client %d ends: %s (%d of %d answered)", c.id, why, c.answered, len(c.reqs))
		c.conn.Close()
	}
}

func (c *httpClient) Wake(conn *sim.Conn) { c.wake(conn) }

func (c *httpClient) wake(conn clientConn) {
	if c.done {
		return
	}
	if conn.Refused() {
		if !c.w.stopped {
			c.w.n.Fail("client %d: connect refused", c.id)
		}
		c.end("refused: the proxy is stopping")
		return
	}
	if c.sent == 0 {
		c.send()
	}
	c.buf = append(c.buf, conn.Read()...)
	for c.answered < len(c.reqs) {
		if !c.inBody {
			ok, err := c.p.Parse(c.buf, http1.Response, &c.h)
			if err != nil {
				c.w.n.Fail("client %d: a bad response from the proxy: %v: %q", c.id, err, c.buf)
				return
			}
			if !ok {
				break
			}
			head := c.buf[:c.h.Len]
			c.status = c.h.Status
			if c.status >= 100 && c.status < 200 {
				c.buf = c.buf[c.h.Len:]
				c.p.Reset()
				continue
			}
			c.closing = !c.h.KeepAlive()
			kind, n := c.h.Body(c.reqs[c.answered].method == "HEAD", false)
			c.body.Init(kind, n, http1.Limits{})
			c.buf, c.inBody, c.content = c.buf[len(head):], true, nil
			c.p.Reset()
		}
		n, data, done, err := c.body.Decode(c.buf)
		if err != nil {
			c.w.n.Fail("client %d: a bad response body: %v", c.id, err)
			return
		}
		c.content = append(c.content, data...)
		c.buf = c.buf[n:]
		if !done && n > 0 {
			continue // Decode gives one chunk's data at a time
		}
		if !done && !(conn.EOF() && c.body.Kind() == http1.BodyUntilClose) {
			break
		}
		c.inBody = false
		c.w.n.Tracef("client %d: response %d for %s", c.id, c.status, c.reqs[c.answered].id)
		c.check(c.reqs[c.answered], c.status, c.content)
		c.answered++
		if c.closing {
			break
		}
		c.send()
	}
	switch {
	case c.answered == len(c.reqs):
		c.end("all answered")
	case conn.Reset() || conn.EOF():
		// The proxy closed with requests unanswered: only after a fault
		// on this connection, or a response that said it would close.
		if !c.closing && !c.faulted() && !c.w.stopped && !c.w.n.Jumped() {
			c.w.n.Fail("client %d: the connection ended with %d of %d requests answered, no fault, no close announced", c.id, c.answered, len(c.reqs))
		}
		c.end("closed by the proxy")
	case c.closing && !c.inBody:
		c.end("the proxy announced the close")
	}
}

// faulted reports whether a request sent and not answered had a plan
// that may end the connection.
func (c *httpClient) faulted() bool {
	for _, r := range c.reqs[c.answered:c.sent] {
		switch c.w.plans[r.id] {
		case planHang, planAbort, planGarbage, planEarly:
			return true
		}
	}
	return false
}

func (c *httpClient) check(r request, status int, body []byte) {
	pl := c.w.plans[r.id]
	c.w.answered[r.id]++
	if c.w.answered[r.id] > 1 {
		c.w.n.Fail("request %s answered twice", r.id)
	}
	ok := status == 200 && string(body) == expected(r.id, r.body)
	if status == 503 && c.w.tight {
		return // out of buffers: the proxy's answer when its pool is exhausted
	}
	if c.w.n.Jumped() && (status == 504 || status == 408 || status == 502 || status == 503) {
		return // the clock jumped past the timeouts: theirs are the answers
	}
	switch pl {
	case planOK, planChunked, planClose:
		if !ok {
			c.w.n.Fail("request %s (%s, plan %s): status %d body %q, want 200 %q", r.id, r.method, planNames[pl], status, body, expected(r.id, r.body))
		}
	case planHang:
		if status != 504 {
			c.w.n.Fail("request %s: a hung backend gave %d, want 504", r.id, status)
		}
	case planAbort:
		if !(status == 502 || idempotent(r.method) && ok) {
			c.w.n.Fail("request %s (%s): a backend reset gave %d %q, want 502 (or the retry's answer)", r.id, r.method, status, body)
		}
	case planGarbage:
		if status != 502 {
			c.w.n.Fail("request %s: a garbage response gave %d, want 502", r.id, status)
		}
	case planEarly:
		if status != 413 {
			c.w.n.Fail("request %s: the backend's early 413 became %d", r.id, status)
		}
	}
}

func buildRequest(id, method string, body []byte, chunked bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s /r/%s HTTP/1.1\r\nHost: app.example\r\nX-Id: %s\r\n", method, id, id)
	switch {
	case method == "GET":
	case chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; len(rest) > 0; {
			k := min(len(rest), 1+len(rest)/3)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", k, rest[:k])
			rest = rest[k:]
		}
		b.WriteString("0\r\n\r\n")
		return []byte(b.String())
	default:
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return []byte(b.String())
}

// runHTTP: HTTP/1.1 clients through httpproxy to two backends whose
// answers the seed plans per request.
func runHTTP(seed uint64) (*sim.Net, error) {
	n := sim.New(seed, sim.AllFaults)
	n.Verbose = *seedFlag != 0
	rng := n.Rand()
	world := &httpWorld{n: n, plans: map[string]plan{}, methods: map[string]string{}, processed: map[string]int{}, answered: map[string]int{}}
	cfg := session.Config{MaxConnections: 64}
	if rng.IntN(5) == 0 {
		// Buffer-pool exhaustion: requests wait for a buffer or get 503.
		cfg.Buffers = protocol.PoolConfig{Max: 2 + rng.IntN(5)}
		world.tight = true
	}
	w, err := session.NewWorker(n.Config(cfg))
	if err != nil {
		return n, err
	}
	be1, be2, front := sim.Addr(10, 8001), sim.Addr(11, 8002), sim.Addr(1, 80)
	accept := func(c *sim.Conn) sim.Actor { return &httpBackend{w: world} }
	n.Serve(be1, accept)
	n.Serve(be2, accept)
	faulty := rng.IntN(3) == 0
	var clients []*httpClient
	start := func() {
		must(n, w.AddCluster("c", backend.RoundRobin))
		must(n, w.AddBackend("c", backend.Backend{ID: "b1", Address: be1}))
		must(n, w.AddBackend("c", backend.Backend{ID: "b2", Address: be2}))
		l := httpproxy.NewListener(httpproxy.Config{BackTimeout: 5 * time.Second, MaxIdlePerBackend: 1 + rng.IntN(4)})
		must(n, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
		_, err := w.AddListener(front, l, session.ListenConfig{})
		must(n, err)
		if rng.IntN(3) == 0 {
			// Reconfiguration between two events: b2 leaves while
			// requests are in flight, and comes back.
			n.After(time.Duration(rng.IntN(200))*time.Millisecond, func() {
				n.Tracef("command: remove b2")
				mustUnlessStopped(n, w.RemoveBackend("c", "b2"))
				n.After(time.Duration(rng.IntN(200))*time.Millisecond, func() {
					n.Tracef("command: add b2")
					mustUnlessStopped(n, w.AddBackend("c", backend.Backend{ID: "b2", Address: be2}))
				})
			})
		}
		if rng.IntN(4) == 0 {
			// A soft stop between two events, clients at work: what a
			// backend processed must still reach its client.
			n.After(time.Duration(rng.IntN(300))*time.Millisecond, func() {
				n.Tracef("command: soft stop")
				world.stopped = true
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				must(n, w.SoftStop(ctx))
			})
		}
		k := 1 + rng.IntN(4)
		for i := 0; i < k; i++ {
			c := &httpClient{w: world, id: i, pipeline: rng.IntN(3) == 0}
			for j := 0; j < 1+rng.IntN(5); j++ {
				id := strconv.Itoa(i) + "-" + strconv.Itoa(j)
				method, body, pl := drawRequest(rng, 14, faulty, planHang, planAbort, planGarbage, planEarly)
				if pl == planEarly && method == "GET" {
					pl = planGarbage
				}
				world.plans[id], world.methods[id] = pl, method
				c.reqs = append(c.reqs, request{id: id, method: method, body: body, wire: buildRequest(id, method, body, rng.IntN(2) == 0)})
			}
			clients = append(clients, c)
			n.After(time.Duration(rng.IntN(30))*time.Millisecond, func() { c.conn = n.Dial(front, c) })
		}
	}
	done := allDone(&clients, func(c *httpClient) bool { return c.done })
	err = n.Run(w, start, stopWhenDone(n, w, done))
	if err == nil && world.stopped && !n.Jumped() {
		// No request a backend processed is lost to the stop.
		for _, c := range clients {
			for _, r := range c.reqs {
				if pl := world.plans[r.id]; world.processed[r.id] > 0 && world.answered[r.id] == 0 && (pl == planOK || pl == planChunked || pl == planClose) {
					return n, fmt.Errorf("seed %d: the soft stop lost request %s, which a backend processed", seed, r.id)
				}
			}
		}
	}
	return n, err
}

func TestSimHTTP(t *testing.T) { seeds(t, "http", runHTTP) }

// mustUnlessStopped: a command after a soft stop is refused, rightly.
func mustUnlessStopped(n *sim.Net, err error) {
	if !errors.Is(err, session.ErrStopped) {
		must(n, err)
	}
}

// drawRequest draws a client's request and its backend's plan, in the
// order every scenario draws them (a seed means the same run only while
// it does): the method, a body of up to 2^maxBodyBits-1 bytes for a
// method that has one, the plan (chunked or closing now and then), and
// in a faulty run one of faults a quarter of the time.
func drawRequest(rng *rand.Rand, maxBodyBits int, faulty bool, faults ...plan) (string, []byte, plan) {
	method := [...]string{"GET", "GET", "POST", "PUT"}[rng.IntN(4)]
	var body []byte
	if method != "GET" {
		body = bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(1<<uint(rng.IntN(maxBodyBits))))
	}
	pl := planOK
	if r := rng.IntN(10); r < 2 {
		pl = planChunked
	} else if r < 3 {
		pl = planClose
	}
	if faulty && rng.IntN(4) == 0 {
		pl = faults[rng.IntN(len(faults))]
	}
	return method, body, pl
}
