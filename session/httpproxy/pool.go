package httpproxy

import (
	"slices"
	"strings"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// workerState is what the HTTP sessions of one worker share: the idle
// backend connections and a scratch buffer. It lives in the worker (see
// session.Loop.Local) and is touched only on its loop.
type workerState struct {
	idle map[*backend.Backend][]*idleConn
	free spares[*exchange]
	// dials keeps Dialers between a session's backend connections.
	dials spares[*session.Dialer]
	// spareIdle keeps idleConn values between a take and the next put.
	spareIdle spares[*idleConn]
	tmp       []byte            // scratch for field values the editor copies
	build     http1.Builder     // heads from HTTP/2 fields, written as HTTP/1.1 and indexed at once
	spareHead http1.Head        // the index of a head nobody reads it from (an interim one)
	intern    interner          // HTTP/2 field strings
	h2fields  []h2.HeaderField  // scratch: a response head's HTTP/2 fields, encoded at once
	children  spares[*h2Child]  // HTTP/2 stream sessions, for the next streams
	sides     spares[*backSide] // cycles' backend sides, for the next requests

	clusterAnswers map[string]map[int]Answer
	seq            uint64 // request id counter
	salt           uint64
	scratch        *tlsconn.Scratch // HTTPS: the worker's ciphertext scratch

	h2Clusters map[string]bool                // clusters whose backends speak h2c
	health     map[string]*healthSupervisor   // health checks by cluster
	h2conns    map[*backend.Backend][]*h2Back // their connections
	routeHooks map[*Listener]map[string][]Hooks
}

type stateKey struct{}

func stateOf(lp *session.Loop) *workerState {
	return lp.Local(stateKey{}, func() any {
		st := &workerState{idle: map[*backend.Backend][]*idleConn{}, salt: uint64(lp.Now().UnixNano())} // the loop's clock: a simulation replays its ids
		lp.OnClusterRemoved(st.clusterRemoved)
		lp.OnTokenShortage(st.evictIdle)
		lp.OnBackendRemoved(st.backendRemoved)
		return st
	}).(*workerState)
}

// clusterRemoved forgets the settings of a removed cluster, so that one
// added again under the same name starts from the listener's defaults.
func (st *workerState) clusterRemoved(cluster string) {
	delete(st.clusterAnswers, cluster)
	delete(st.h2Clusters, cluster)
	if h := st.health[cluster]; h != nil {
		h.Close()
	}
}

// backendRemoved closes the idle pooled connections to a removed
// backend: nothing will take them again.
func (st *workerState) backendRemoved(b *backend.Backend) {
	for len(st.idle[b]) > 0 {
		st.idle[b][0].Close() // removes itself from the list
	}
}

// evictIdle gives tokens back when the worker runs short of them (a
// client waits in the backlog meanwhile): it closes up to need idle
// pooled connections, the longest pooled of each backend first, going
// round the backends so that none loses its whole pool while others keep
// theirs.
func (st *workerState) evictIdle(need int) {
	// The backends in a fixed order (by address, then id), not the
	// map's: which connections close is then the same every run.
	bs := make([]*backend.Backend, 0, len(st.idle))
	for b := range st.idle {
		bs = append(bs, b)
	}
	slices.SortFunc(bs, func(a, b *backend.Backend) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for need > 0 {
		closed := false
		for _, b := range bs {
			if need == 0 {
				break
			}
			if list := st.idle[b]; len(list) > 0 {
				list[0].Close() // removes itself from the list
				need--
				closed = true
			}
		}
		if !closed {
			return
		}
	}
}

// idleConn is a keep-alive backend connection waiting in the pool. It
// stays registered: any event on it (the server closing it, or sending
// bytes nobody asked for) closes it.
type idleConn struct {
	lp     *session.Loop
	st     *workerState
	b      *backend.Backend
	sock   protocol.TCPSocket
	token  eventloop.Token
	timer  timer.Handle
	closed bool
}

// put pools a backend connection whose exchange ended cleanly. It
// reports false when the pool is full (the caller closes it).
func (st *workerState) put(lp *session.Loop, b *backend.Backend, sock protocol.TCPSocket, t eventloop.Token, max int, idleTimeout time.Duration) bool {
	list := st.idle[b]
	if max <= 0 || len(list) >= max || b.Status() == backend.Removed {
		return false
	}
	c, ok := st.spareIdle.take()
	if !ok {
		c = new(idleConn)
	}
	*c = idleConn{lp: lp, st: st, b: b, sock: sock, token: t}
	if lp.RebindOwner(t, c) != nil {
		return false
	}
	c.timer = lp.Schedule(t, 0, idleTimeout)
	st.idle[b] = append(list, c)
	return true
}

// take hands out the most recently pooled connection to b, if any: the
// warmest one, and the older ones age out by their timer.
func (st *workerState) take(lp *session.Loop, b *backend.Backend, s session.ProxySession) (protocol.TCPSocket, eventloop.Token, bool) {
	list := st.idle[b]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		st.idle[b] = list
		if c.closed {
			continue
		}
		lp.Timers().Cancel(c.timer)
		c.closed = true
		if lp.Rebind(c.token, s) != nil {
			continue
		}
		sock, t := c.sock, c.token
		// Nothing refers to c any more (its token is the session's now):
		// keep it for the next put, so pooling allocates nothing per
		// request.
		*c = idleConn{closed: true}
		st.spareIdle.keep(c, maxFreeExchanges)
		return sock, t, true
	}
	return protocol.TCPSocket{}, 0, false
}

func (st *workerState) remove(c *idleConn) {
	list := st.idle[c.b]
	for i, x := range list {
		if x == c {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			st.idle[c.b] = list[:len(list)-1]
			break
		}
	}
	if len(st.idle[c.b]) == 0 {
		delete(st.idle, c.b)
	}
}

// Event closes the connection after any event but a writable edge: the
// server closed it, reset it, or sent bytes nobody asked for.
func (c *idleConn) Event(_ eventloop.Token, r eventloop.Ready) {
	if r&^eventloop.Writable != 0 {
		c.Close()
	}
}

// Timeout: the connection was idle too long.
func (c *idleConn) Timeout(eventloop.Token, eventloop.TimerName) { c.Close() }

func (c *idleConn) Close() {
	if c.closed {
		return
	}
	c.closed = true
	c.st.remove(c)
	c.lp.Timers().Cancel(c.timer)
	c.lp.Release(c.token, c.sock.Fd())
	c.sock.Close()
}

var _ session.TokenOwner = (*idleConn)(nil)

// exchange is the state of one request and its response: parsers,
// heads, editors and the writev lists. Sessions borrow one from their
// worker for the duration of a request, so that an idle keep-alive
// connection holds a few hundred bytes rather than a few kilobytes.
type exchange struct {
	parser   http1.Parser
	req      http1.Head
	reqBody  http1.Body
	reqEdit  http1.Editor
	reqOut   [][]byte // what is left to write of the request
	segs     [24][]byte
	rparser  http1.Parser
	resp     http1.Head
	respBody http1.Body
	respEdit http1.Editor
	respOut  [][]byte // what is left to write of the response
	rsegs    [24][]byte

	// Per-request bookkeeping, out of the session for the same reason.
	built        bool  // the front stream wrote the request head and indexed it in req: no parse
	buildErr     error // the check the built head failed
	respBuilt    bool  // the back stream wrote the response head and indexed it in resp
	respBuildErr error
	known        knownFields // where the fields the proxy edits are in req
	tooBig       bool        // the body bytes that came with the head pass MaxBody already
	sticky       string      // the sticky cookie's value in the current request
	pendingBody  int         // body bytes in reqOut, consumed from fbuf once written
	reqBodyIn    int64
	id           [16]byte // request id (hex), ours or the client's first 16 bytes
	idLen        int
	start        time.Time // the request's first byte
	connectAt    time.Time // a backend connection was asked for
	connected    time.Time // it was ready (pooled, or the connect completed)
	respAt       time.Time // the response head arrived
	logLine      []byte    // method, host and target for the access log (only with one)
	logSpans     [3]int
	pendingResp  int // bytes of bbuf in respOut, consumed once written
	respBytes    int64
	sentBack     uint64 // bytes written to backend connections, for the listener's BytesIn
	gotBack      uint64 // bytes read from them, for BytesOut

	// Hooks and where the request goes.
	hreq          Request // what the hooks see
	hresp         Response
	outcome       Outcome
	hookAt        int     // the next hook of the current phase
	upstreamRoute bool    // the listener's Upstream hooks ran; the route's are next
	doneRun       bool    // the Done hooks ran
	rhooks        []Hooks // the route's hooks, looked up once
	clusterID     string  // the cluster chosen (a hook's or the route's)
	backendID     string  // the backend that took the request
	answer        []byte  // an answer of the proxy's own, being written
	answerCode    int     // its status, for the log
	scratch       [64]byte
}

// maxFreeExchanges bounds the exchanges a worker keeps for reuse: enough
// for the requests of a busy loop in flight at once, few enough that the
// memory of a burst goes back (each is about 3 KiB with its field slices).
const maxFreeExchanges = 512 // an HTTP/2 client may have hundreds of streams in flight

// spares keeps values a request is done with for the next one, up to a
// bound, so that a steady load allocates none of them.
type spares[T any] struct{ s []T }

// take returns the value kept last, if any.
func (p *spares[T]) take() (v T, ok bool) {
	n := len(p.s)
	if n == 0 {
		return v, false
	}
	v = p.s[n-1]
	var zero T
	p.s[n-1] = zero
	p.s = p.s[:n-1]
	return v, true
}

// keep keeps v unless max values are kept already.
func (p *spares[T]) keep(v T, max int) {
	if len(p.s) < max {
		p.s = append(p.s, v)
	}
}

// getSide lends a backend side.
func (st *workerState) getSide() *backSide {
	if b, ok := st.sides.take(); ok {
		return b
	}
	return &backSide{}
}

// putSide takes a backend side back, cleared.
func (st *workerState) putSide(b *backSide) {
	*b = backSide{}
	st.sides.keep(b, maxFreeExchanges)
}

func (st *workerState) getExchange(limits http1.Limits) *exchange {
	x, ok := st.free.take()
	if !ok {
		x = &exchange{}
	}
	x.parser.Limits, x.rparser.Limits = limits, limits
	x.parser.Reset()
	x.rparser.Reset()
	x.idLen, x.answerCode, x.sticky, x.tooBig = 0, 0, "", false
	x.built, x.buildErr, x.respBuilt, x.respBuildErr = false, nil, false, nil
	x.answer, x.logLine = x.answer[:0], x.logLine[:0]
	x.pendingBody, x.pendingResp, x.respBytes, x.reqBodyIn = 0, 0, 0, 0
	x.sentBack, x.gotBack = 0, 0
	x.hreq, x.hookAt, x.upstreamRoute, x.doneRun, x.clusterID, x.backendID, x.rhooks = Request{}, 0, false, false, "", "", nil
	x.start, x.connectAt, x.connected, x.respAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return x
}

// getDialer lends a Dialer for one backend connection: a session holds
// one only from its connect until its backend connection ends, so an
// idle keep-alive session pays nothing for it.
func (st *workerState) getDialer() *session.Dialer {
	if d, ok := st.dials.take(); ok {
		return d
	}
	return new(session.Dialer)
}

// putDialer takes back a closed Dialer.
func (st *workerState) putDialer(d *session.Dialer) {
	*d = session.Dialer{} // let removed backends go
	st.dials.keep(d, maxFreeExchanges)
}

func (st *workerState) putExchange(x *exchange) {
	if x == nil || len(st.free.s) >= maxFreeExchanges {
		return
	}
	x.reqOut, x.respOut = nil, nil
	clear(x.segs[:])
	clear(x.rsegs[:])
	// Nothing of the request outlives it in the pool: a hook's value,
	// the session, the outcome's strings.
	x.hreq, x.hresp, x.outcome, x.rhooks = Request{}, Response{}, Outcome{}, nil
	st.free.keep(x, maxFreeExchanges)
}
