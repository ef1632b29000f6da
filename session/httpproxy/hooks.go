package httpproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/session"
)

// Hooks are a program's say in every request the listener proxies, in
// the spirit of Pingora's phases and httputil's Rewrite and
// ModifyResponse: functions the session calls on its loop at fixed points
// of each exchange, the same for HTTP/1.1, HTTPS, HTTP/2 over TLS and
// h2c, and for HTTP/1.1 and HTTP/2 backends. Every field is optional.
//
// Hooks run on the worker's loop, between the events of other
// connections: they must not block. One that needs another service (an
// auth call, a token lookup) suspends its request ([Request.Suspend]) and
// resumes it from any goroutine.
//
// Hooks compose: those of [Config.Hooks] run in order, then those a route
// adds ([Listener.SetRouteHooks]). A hook that answers
// ([Request.Respond]) or suspends ends its phase for the request; the
// next phase's hooks still run when there is one. A hook that panics
// fails its request with 500, is counted ([StatsSnapshot.HookPanics]) and
// logged, and the connection goes on.
type Hooks struct {
	// Request sees the request head once it is in: the listener's hooks
	// before the route is chosen (so that they can change the host or
	// the path it is chosen by, or pick the cluster themselves), a
	// route's after. It may read and edit the request, answer it, pick
	// the cluster, a backend or a hash key, keep a value for later hooks,
	// or suspend the request.
	Request func(r *Request)
	// Upstream sees the request as it will go to the backend, with the
	// proxy's own edits (X-Forwarded-For, Forwarded, X-Request-Id, the
	// route's header edits), before the backend is picked. It may edit,
	// answer or suspend as Request does.
	Upstream func(r *Request)
	// Response sees the backend's final response head (not a 1xx): it may
	// change its status and fields, or answer instead.
	Response func(r *Request, resp *Response)
	// Done hears how the exchange ended, whatever ended it: for logs,
	// metrics, billing. The request may be read, not changed.
	Done func(r *Request, o *Outcome)
}

// Field is a header field of an answer.
type Field struct{ Name, Value string }

// Outcome is how an exchange ended, for [Hooks.Done].
type Outcome struct {
	// Status is the status the client got (the backend's, or the
	// proxy's own when Answered); 0 when none reached it.
	Status int
	// Answered: the proxy answered itself (a hook's Respond, a 404, a
	// 503, ...) rather than relaying a backend's response.
	Answered bool
	// Cluster and Backend are where the request went ("" if nowhere).
	Cluster, Backend string
	// RequestBytes and ResponseBytes are the body bytes read from the
	// client and relayed from the backend.
	RequestBytes, ResponseBytes int64
	// Start is when the request's first byte came; Duration runs from
	// it to the end. Connect is the wait for a backend connection and
	// FirstByte the wait from there to the response head (0 when
	// unknown).
	Start                        time.Time
	Duration, Connect, FirstByte time.Duration
	// Err says why the exchange did not end with a complete response
	// (ErrExchangeAborted), nil when it did.
	Err error
}

// ErrExchangeAborted is [Outcome.Err] when the connection ended in the
// middle of an exchange (the client or the backend went away, a timeout
// fired after the response had started).
var ErrExchangeAborted = errors.New("httpproxy: the exchange ended before its response did")

// hookPhase is which of a request's hook phases runs.
type hookPhase uint8

const (
	phaseListenerRequest hookPhase = iota
	phaseRouting
	phaseRouteRequest
	phaseEdits
	phaseUpstream
	phaseDispatched
)

// timerHook names a suspended request's deadline on its session's
// frontend token.
const timerHook eventloop.TimerName = 1

// Request is the request a hook sees: valid only during the hook's call
// (a suspended request: until it is resumed). Reads see the request with
// the edits made so far, the proxy's own included in the Upstream phase.
// Accessors that return strings copy; the proxy allocates nothing for a
// request no hook looks at.
type Request struct {
	s       *cycle
	stage   hookPhase
	stopped bool // a hook answered or suspended
	edited  bool // the host or target changed

	cluster   string // "" : the route's
	backendID string
	key       uint64
	useKey    bool
	value     any
	pend      *Pending
}

func (r *Request) head() []byte { return r.s.fbuf.Bytes()[:r.s.x.req.Len] }

// Method is the request method.
func (r *Request) Method() string { return string(r.s.x.req.Method.Of(r.head())) }

// Host is the Host field (with its port, if any): the :authority of an
// HTTP/2 request.
func (r *Request) Host() string {
	v, _ := r.s.x.reqEdit.Get("host")
	return string(v)
}

// Target is the request-target: path and query.
func (r *Request) Target() string { return string(r.s.x.reqEdit.Target()) }

// Path is the target's path, without the query.
func (r *Request) Path() string {
	t := r.s.x.reqEdit.Target()
	for i, c := range t {
		if c == '?' {
			return string(t[:i])
		}
	}
	return string(t)
}

// Query is the target's raw query, without the '?'.
func (r *Request) Query() string {
	t := r.s.x.reqEdit.Target()
	for i, c := range t {
		if c == '?' {
			return string(t[i+1:])
		}
	}
	return ""
}

// QueryValue is the first value of query parameter name, unescaped.
func (r *Request) QueryValue(name string) (string, bool) {
	return queryValue(r.Query(), name)
}

func queryValue(q, name string) (string, bool) {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if v, err := url.QueryUnescape(v); err == nil {
			return v, true
		}
	}
	return "", false
}

// Field is the value of field name (case-insensitive; the first when
// there are several).
func (r *Request) Field(name string) (string, bool) {
	v, ok := r.s.x.reqEdit.Get(name)
	return string(v), ok
}

// Proto is "HTTP/2" for a request on an HTTP/2 connection, else
// "HTTP/1.1" (or "HTTP/1.0").
func (r *Request) Proto() string {
	if r.s.conn() == nil {
		return "HTTP/2"
	}
	if r.s.x.req.Minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// TLS reports whether the client connection is TLS.
func (r *Request) TLS() bool { return r.s.secure }

// Client is the client's address: the PROXY-protocol source when there
// was one.
func (r *Request) Client() netip.AddrPort {
	a, _ := r.s.SessionAddress()
	return a
}

// ID is the request id (the client's X-Request-Id, or the proxy's).
func (r *Request) ID() string { return string(r.s.x.id[:r.s.x.idLen]) }

// Loop is the worker's loop the request runs on: its clusters, clock and
// per-worker state, for hooks that pick a backend themselves. The same
// loop-only rules as for sessions apply.
func (r *Request) Loop() *session.Loop { return r.s.lp }

// AppendHead appends the request head as it stands (as it would go to
// the backend in the Upstream phase, with the proxy's own edits) to dst.
func (r *Request) AppendHead(dst []byte) []byte { return r.s.x.reqEdit.AppendTo(dst) }

// BufferedBody returns the request body when all of it is already in the
// proxy's buffer and is at most max bytes: nil and true for a request
// without one. It reports false for a body still arriving, a larger one,
// or a chunked one (the proxy streams those and never holds them whole).
func (r *Request) BufferedBody(max int) ([]byte, bool) {
	x := r.s.x
	kind, n := x.req.Body(false, false)
	switch kind {
	case http1.BodyNone:
		return nil, true
	case http1.BodyLength:
		b := r.s.fbuf.Bytes()
		if n <= int64(max) && int64(len(b)-x.req.Len) >= n {
			return b[x.req.Len : x.req.Len+int(n)], true
		}
	}
	return nil, false
}

// Value is what an earlier hook kept with SetValue.
func (r *Request) Value() any { return r.value }

// SetValue keeps v with the request for later hooks (Response, Done).
func (r *Request) SetValue(v any) { r.value = v }

// SetTarget replaces the request-target (path and query).
func (r *Request) SetTarget(target string) error {
	if err := r.s.x.reqEdit.SetTarget([]byte(target)); err != nil {
		return err
	}
	r.edited = true
	return nil
}

// SetPath replaces the path, keeping the query.
func (r *Request) SetPath(path string) error {
	if q := r.Query(); q != "" || strings.HasSuffix(r.Target(), "?") {
		path += "?" + q
	}
	return r.SetTarget(path)
}

// SetHost replaces the Host field.
func (r *Request) SetHost(host string) error {
	if err := r.s.x.reqEdit.Set("Host", []byte(host)); err != nil {
		return err
	}
	r.edited = true
	return nil
}

// SetField makes value the only value of field name.
func (r *Request) SetField(name, value string) error { return setField(&r.s.x.reqEdit, name, value) }

// AddField adds a field, after those of the same name.
func (r *Request) AddField(name, value string) error { return addField(&r.s.x.reqEdit, name, value) }

// DelField removes every field named name.
func (r *Request) DelField(name string) { delField(&r.s.x.reqEdit, name) }

// The field edits a hook may make, on a request or a response: never
// the framing (Content-Length, Transfer-Encoding) or Host.
func setField(e *http1.Editor, name, value string) error {
	if isFraming(name) {
		return http1.ErrInvalidEdit
	}
	return e.Set(name, []byte(value))
}

func addField(e *http1.Editor, name, value string) error {
	if isFraming(name) {
		return http1.ErrInvalidEdit
	}
	return e.Add(name, []byte(value))
}

func delField(e *http1.Editor, name string) {
	if !isFraming(name) {
		e.Del(name)
	}
}

// isFraming reports fields a hook may not touch: the proxy frames the
// body by them, and a change would desynchronise the two sides (request
// smuggling). Host goes through SetHost.
func isFraming(name string) bool {
	return strings.EqualFold(name, "content-length") || strings.EqualFold(name, "transfer-encoding") || strings.EqualFold(name, "host")
}

// UseCluster sends the request to cluster id, whatever the route says.
func (r *Request) UseCluster(id string) { r.cluster = id }

// UseBackend sends the request to backend id of its cluster only (no
// other is tried; 503 when it cannot be reached).
func (r *Request) UseBackend(id string) { r.backendID = id }

// UseKey picks the backend by key when the cluster's policy hashes
// (backend.Maglev, backend.RingHash): equal keys, same backend.
func (r *Request) UseKey(key uint64) { r.key, r.useKey = key, true }

// Respond answers the request with status, body and fields instead of a
// backend: the exchange ends there (a Response hook's answer replaces
// the backend's response). Content-Length, X-Request-Id and Connection
// are the proxy's. Later hooks of the phase do not run.
func (r *Request) Respond(status int, body string, fields ...Field) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.s.answerHook(status, body, fields)
}

// Suspend holds the request after this hook returns, until the returned
// Pending is resumed (from any goroutine) or timeout passes, when the
// client gets 504 and the suspension is counted
// ([StatsSnapshot.HookTimeouts]). The request's later hooks run after
// the resume. Only Request and Upstream hooks may suspend.
func (r *Request) Suspend(timeout time.Duration) *Pending {
	if r.stopped || (r.stage != phaseListenerRequest && r.stage != phaseRouteRequest && r.stage != phaseUpstream) {
		panic("httpproxy: Suspend outside a Request or Upstream hook, or after Respond")
	}
	r.stopped = true
	s := r.s
	p := &Pending{s: s}
	r.pend = p
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, timerHook, timeout)
	s.phase = phaseSuspended
	return p
}

// Pending is a suspended request, waiting to be resumed.
type Pending struct {
	s    *cycle
	once sync.Once
}

// ErrNotPending is what Resume reports when the request it would resume
// is gone: its deadline passed, or its client left.
var ErrNotPending = errors.New("httpproxy: the request is no longer suspended")

// Resume runs f on the loop with the request (to edit it, answer it,
// pick its cluster: what a Request hook may do), then lets it go on with
// its next hook. f may be nil. It is safe from any goroutine; only the
// first call counts. It reports ErrNotPending, without running f, when
// the request no longer waits (it is reported later if the loop finds
// out only then: Resume does not wait for the loop).
func (p *Pending) Resume(f func(r *Request)) error {
	err := ErrNotPending
	p.once.Do(func() {
		err = p.s.lp.Post(func() { p.s.resume(p, f) })
	})
	return err
}

// answerHook answers with a hook's status, body and fields.
func (s *cycle) answerHook(status int, body string, fields []Field) {
	s.lw.stats.hookAnswers.Add(1)
	if !s.beginAnswer(false) {
		s.closeAfter = true
		return
	}
	x := s.x
	a := append(x.answer[:0], "HTTP/1.1 "...)
	a = strconv.AppendInt(a, int64(status), 10)
	a = append(append(append(a, ' '), reasonPhrase(status)...), "\r\n"...)
	for _, f := range fields {
		if !http1.ValidFieldName(f.Name) || !http1.ValidFieldValue(f.Value) || isFraming(f.Name) {
			continue // a hook cannot break the answer's framing
		}
		a = append(append(append(append(a, f.Name...), ": "...), f.Value...), "\r\n"...)
	}
	noBody := status == 204 || status == 304 || status < 200
	if !noBody {
		a = append(strconv.AppendInt(append(a, "Content-Length: "...), int64(len(body)), 10), "\r\n"...)
	}
	a = append(append(append(a, "X-Request-Id: "...), x.id[:x.idLen]...), "\r\n"...)
	if s.closeAfter {
		a = append(a, "Connection: close\r\n"...)
	}
	a = append(a, "\r\n"...)
	if !noBody && x.req.MethodID != http1.MethodHEAD {
		a = append(a, body...)
	}
	x.answer = a
	s.queueAnswer(status)
}

// reasonPhrase is a reason phrase for status.
func reasonPhrase(status int) string {
	for i, st := range answerStatus {
		if st == status && i != ansRedirect {
			return answerText[i]
		}
	}
	switch status {
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 204:
		return "No Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 403:
		return "Forbidden"
	case 405:
		return "Method Not Allowed"
	case 500:
		return "Internal Server Error"
	}
	return "Status"
}

// routeHooks is the hooks of the request's route, looked up once when
// the route was chosen.
func (s *cycle) routeHooks() []Hooks { return s.x.rhooks }

// callHook runs one hook, turning a panic into a 500 for the request.
func (s *cycle) callHook(f func()) {
	defer func() {
		if v := recover(); v != nil {
			s.lw.stats.hookPanics.Add(1)
			s.lp.Logger().Error("http: a hook panicked; the request gets 500", "panic", fmt.Sprint(v), "request_id", string(s.x.id[:s.x.idLen]), "stack", string(debug.Stack()))
			r := &s.x.hreq
			if r.pend != nil { // it suspended, then panicked: the pending one is void
				r.pend = nil
				s.lp.Timers().Cancel(s.frontTimer)
			}
			r.stopped = false
			r.Respond(500, "500 Internal Server Error\n")
		}
	}()
	f()
}

// runRequestHooks runs the hooks of phase from x.hookAt on. It reports
// whether the request goes on (no hook answered or suspended).
func (s *cycle) runRequestHooks(list []Hooks, upstream bool) bool {
	x := s.x
	r := &x.hreq
	for x.hookAt < len(list) {
		h := &list[x.hookAt]
		x.hookAt++
		f := h.Request
		if upstream {
			f = h.Upstream
		}
		if f == nil {
			continue
		}
		s.callHook(func() { f(r) })
		if r.stopped {
			return false
		}
	}
	x.hookAt = 0
	return true
}

// advance takes a request from its parsed head to a backend: the
// listener's Request hooks, routing, the route's Request hooks, the
// proxy's own edits, the Upstream hooks. A hook that answers or suspends
// stops it; a resume calls it again.
func (s *cycle) advance() session.Result {
	x := s.x
	r := &x.hreq
	for {
		switch r.stage {
		case phaseListenerRequest:
			if !s.runRequestHooks(s.lw.l.cfg.Hooks, false) {
				return session.Continue
			}
			r.stage = phaseRouting
		case phaseRouting:
			if !s.chooseRoute() {
				return session.Continue // answered
			}
			r.stage = phaseRouteRequest
		case phaseRouteRequest:
			if !s.runRequestHooks(s.routeHooks(), false) {
				return session.Continue
			}
			r.stage = phaseEdits
		case phaseEdits:
			if !s.chooseCluster() {
				return session.Continue
			}
			s.editRequest()
			r.stage = phaseUpstream
		case phaseUpstream:
			if len(s.lw.l.cfg.Hooks) > 0 && !x.upstreamRoute {
				if !s.runRequestHooks(s.lw.l.cfg.Hooks, true) {
					return session.Continue
				}
				x.upstreamRoute = true
			}
			if !s.runRequestHooks(s.routeHooks(), true) {
				return session.Continue
			}
			r.stage = phaseDispatched
			if r.cluster != "" && r.cluster != x.clusterID {
				// An Upstream hook changed its mind.
				if !s.chooseCluster() {
					return session.Continue
				}
			}
			s.retried = false
			x.connectAt, x.connected, x.respAt = s.lp.Now(), time.Time{}, time.Time{}
			s.phase = phaseConnect
			return session.Continue
		default:
			return session.Continue
		}
	}
}

// resume goes on with a suspended request.
func (s *cycle) resume(p *Pending, f func(r *Request)) {
	if s.phase != phaseSuspended || s.x == nil || s.x.hreq.pend != p {
		return // timed out, or the client left
	}
	r := &s.x.hreq
	r.pend, r.stopped = nil, false
	s.lp.Timers().Cancel(s.frontTimer)
	s.frontTimer = s.lp.Schedule(s.frontToken, 0, s.lw.l.cfg.FrontTimeout)
	s.phase = phaseHead // not reading: the hooks decide what comes next
	if f != nil {
		s.callHook(func() { f(r) })
	}
	if !r.stopped {
		s.advance()
	}
	s.lp.Notify(s.frontToken, 0) // drive the session: connect, or write the answer
}

// hookTimedOut answers a request whose suspension lasted too long.
func (s *cycle) hookTimedOut() session.Result {
	s.lw.stats.hookTimeouts.Add(1)
	s.x.hreq.pend = nil
	_, res := s.answerWith(ans504, false)
	if res == session.Close {
		return res
	}
	return s.self.Ready(s.self)
}

// runResponseHooks runs the Response hooks on the parsed response head.
// It reports false when one answered instead.
func (s *cycle) runResponseHooks() bool {
	lh, rh := s.lw.l.cfg.Hooks, s.routeHooks()
	if len(lh) == 0 && len(rh) == 0 {
		return true
	}
	x := s.x
	r := &x.hreq
	resp := &x.hresp
	*resp = Response{s: s}
	for _, list := range [2][]Hooks{lh, rh} {
		for i := range list {
			f := list[i].Response
			if f == nil {
				continue
			}
			s.callHook(func() { f(r, resp) })
			if r.stopped {
				return false
			}
		}
	}
	return true
}

// exchangeDone runs the Done hooks once per exchange.
func (s *cycle) exchangeDone(status int, answered bool, err error) {
	x := s.x
	if x == nil || x.doneRun || !s.headParsed {
		return
	}
	x.doneRun = true
	now := s.lp.Now()
	s.countExchange(status, answered, now)
	lh, rh := s.lw.l.cfg.Hooks, s.routeHooks()
	if len(lh) == 0 && len(rh) == 0 {
		return
	}
	o := &x.outcome
	*o = Outcome{Status: status, Answered: answered, Cluster: x.clusterID, Start: x.start, Duration: now.Sub(x.start),
		Backend: x.backendID, RequestBytes: x.reqBodyIn, ResponseBytes: x.respBytes, Err: err}
	if !x.connectAt.IsZero() && !x.connected.IsZero() {
		o.Connect = x.connected.Sub(x.connectAt)
	}
	if !x.connected.IsZero() && !x.respAt.IsZero() {
		o.FirstByte = x.respAt.Sub(x.connected)
	}
	r := &x.hreq
	for _, list := range [2][]Hooks{lh, rh} {
		for i := range list {
			if f := list[i].Done; f != nil {
				func() {
					defer func() {
						if v := recover(); v != nil {
							s.lw.stats.hookPanics.Add(1)
							s.lp.Logger().Error("http: a Done hook panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
						}
					}()
					f(r, o)
				}()
			}
		}
	}
}

// Response is the backend's response head a Response hook sees and
// edits; valid during the call.
type Response struct{ s *cycle }

// Status is the response's status code.
func (w *Response) Status() int { return w.s.x.resp.Status }

// Field is the value of field name (case-insensitive, the first).
func (w *Response) Field(name string) (string, bool) {
	v, ok := w.s.x.respEdit.Get(name)
	return string(v), ok
}

// SetStatus replaces the status (and reason phrase: the standard one
// when reason is ""). The body stays as the backend framed it, so a
// status that has none (1xx, 204, 304) is refused with
// http1.ErrInvalidEdit.
func (w *Response) SetStatus(code int, reason string) error {
	if code < 200 || code == 204 || code == 304 {
		return http1.ErrInvalidEdit
	}
	if reason == "" {
		reason = reasonPhrase(code)
	}
	if err := w.s.x.respEdit.SetStatus(code, reason); err != nil {
		return err
	}
	w.s.x.resp.Status = code // what the client gets, for logs and Done
	return nil
}

// SetField makes value the only value of field name.
func (w *Response) SetField(name, value string) error { return setField(&w.s.x.respEdit, name, value) }

// AddField adds a field.
func (w *Response) AddField(name, value string) error { return addField(&w.s.x.respEdit, name, value) }

// DelField removes every field named name.
func (w *Response) DelField(name string) { delField(&w.s.x.respEdit, name) }

// SetRouteHooks sets the hooks of the listener's route id (run after the
// listener's own, see [Hooks]); none removes them. It is a command (a
// [session.Worker] or a whole [session.Proxy]): safe from any goroutine.
func (l *Listener) SetRouteHooks(c session.Commands, id string, hooks ...Hooks) error {
	hooks = append([]Hooks(nil), hooks...)
	return c.Exec(func(lp *session.Loop) error {
		st := stateOf(lp)
		if st.routeHooks == nil {
			st.routeHooks = map[*Listener]map[string][]Hooks{}
		}
		m := st.routeHooks[l]
		if m == nil {
			m = map[string][]Hooks{}
			st.routeHooks[l] = m
		}
		if len(hooks) == 0 {
			delete(m, id)
		} else {
			m[id] = hooks
		}
		return nil
	})
}
