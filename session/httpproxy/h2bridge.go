package httpproxy

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/h2"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/session"
)

// What the two HTTP/2 bridges share: the frontend one (h2.go: a client's
// streams get request cycles of their own) and the backend one (h2back.go: a
// session's request becomes a stream to an h2c server). Both read frames
// into the worker's scratch, write a connection's output, record news for
// the sessions behind their streams and deliver it outside the
// connection's callbacks, and translate between HTTP/1.1 heads and bodies
// and HTTP/2 fields and DATA.

// h2conn is what the bridges need of h2.ServerConn and h2.ClientConn.
type h2conn interface {
	Feed(b []byte, now time.Time) (int, error)
	Done() bool
	Output() []byte
	Consume(n int)
}

type frameKey struct{}

// frameScratch is the worker's read buffer for HTTP/2 connections: room
// for the largest frame plus what a read brings after it. Reads never
// nest (the callbacks only record news), so one serves both bridges.
func frameScratch(lp *session.Loop) []byte {
	return lp.Local(frameKey{}, func() any { return make([]byte, 64<<10) }).([]byte)
}

// readFrames reads what sock has after the incomplete frame kept in
// *partial, hands it all to conn (which takes whole frames) and keeps the
// rest; an idle connection keeps no buffer. It reports whether bytes came
// and whether the socket ended or failed.
func readFrames(lp *session.Loop, sock protocol.Socket, ready *protocol.Readiness, partial *[]byte, conn h2conn) (got, ended bool) {
	for ready.Readable() {
		buf := frameScratch(lp)
		k := copy(buf, *partial)
		n, r := sock.Read(buf[k:])
		ready.Read(n, r)
		if n > 0 && conn.Done() {
			// The connection is over but its last frames wait for the
			// peer to take them: what it sends is dropped, and read so
			// that its close is seen. A peer that stopped reading and
			// waits for its own bytes to go out would otherwise hold
			// the connection until a timeout.
			*partial = nil
		} else if n > 0 {
			got = true
			data := buf[:k+n]
			m, err := conn.Feed(data, lp.Now())
			if err != nil {
				*partial = nil
			} else {
				*partial = append((*partial)[:0], data[m:]...)
			}
		}
		if r == protocol.Closed || r == protocol.Error {
			ended = true
			break
		}
		if n == 0 {
			break
		}
	}
	if len(*partial) == 0 {
		*partial = nil
	}
	return got, ended
}

// writeOut writes conn's output to sock while the socket takes it. It
// reports whether bytes went and whether the socket failed.
func writeOut(sock protocol.Socket, ready *protocol.Readiness, conn h2conn) (wrote, failed bool) {
	for ready.Writable() {
		out := conn.Output()
		if len(out) == 0 {
			break
		}
		n, r := sock.Write(out)
		if n > 0 {
			wrote = true
			conn.Consume(n)
		}
		ready.Wrote(r)
		if r == protocol.Closed || r == protocol.Error {
			return wrote, true
		}
		if r != protocol.Continue {
			break
		}
	}
	return wrote, false
}

// news is what a bridge records for the session behind one stream
// between two deliveries: readiness of its virtual socket.
type news struct {
	token  eventloop.Token // the session's token for that socket
	events eventloop.Ready
	queued bool
	closed bool // the stream's socket is closed: drop its news
}

// newsQueue holds the streams with news.
type newsQueue struct{ list, spare []*news }

func (q *newsQueue) add(n *news, ev eventloop.Ready) {
	n.events |= ev
	if !n.queued {
		n.queued = true
		q.list = append(q.list, n)
	}
}

func (q *newsQueue) empty() bool { return len(q.list) == 0 }

// deliverRound drives each session with its news, as if its socket had
// fired (the worker's Event). News recorded meanwhile waits for the next
// round.
func (q *newsQueue) deliverRound(lp *session.Loop) bool {
	list := q.list
	q.list, q.spare = q.spare[:0], list
	progress := false
	for _, n := range list {
		n.queued = false
		ev := n.events
		n.events = 0
		if !n.closed {
			progress = true
			lp.Notify(n.token, ev)
		}
	}
	clear(list)
	return progress
}

// interner makes the strings of HTTP/2 fields from bytes that will be
// written again (a buffer, an editor's head). A field's name and value
// may be kept by the HPACK tables, so the strings must not share those
// bytes; the interner gives back the copy it made for the same bytes
// before, so that the steady stream of identical fields a backend sends
// (content-type, a server name, the second's date) costs no allocation.
// It is the worker's: only its loop uses it.
type interner struct{ m map[string]string }

// Bounds of the interner: longer values are copied and not kept; a full
// table starts over (the strings it gave stay valid where they are).
const (
	internMaxLen  = 128
	internEntries = 4096
)

func (in *interner) str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if s, ok := in.m[string(v)]; ok {
		return s
	}
	s := string(v)
	if len(v) <= internMaxLen {
		if in.m == nil || len(in.m) >= internEntries {
			in.m = make(map[string]string, 256)
		}
		in.m[s] = s
	}
	return s
}

// appendHeadFields appends the fields of an HTTP/1.1 response head as
// HTTP/2 fields.
func appendHeadFields(dst []h2.HeaderField, in *interner, head []byte, h *http1.Head) []h2.HeaderField {
	for i := range h.Fields {
		f := &h.Fields[i]
		dst = appendH2Field(dst, in, f.Name.Of(head), f.Value.Of(head), false)
	}
	return dst
}

// appendH2Field appends an HTTP/1.1 field line as an HTTP/2 field (RFC
// 9113 §8.2.2: a lower-case name, connection-specific fields dropped).
// In a request (§8.3.1) Host is dropped, the caller sends it as
// :authority, and TE is kept only as "trailers", which gRPC sends.
func appendH2Field(dst []h2.HeaderField, in *interner, name, value []byte, request bool) []h2.HeaderField {
	n := fieldName(in, name)
	switch {
	case request && n == "te":
		if string(value) != "trailers" {
			return dst
		}
	case request && n == "host", !allowedInH2(n):
		return dst
	}
	// A value unique to each message (the request id) would only churn
	// the peer's HPACK table, and the interner's: it is sent never
	// indexed, so no table keeps it. A response head is encoded at once:
	// its value may view the editor's bytes; a request's may wait for
	// room on the connection, so it is copied.
	if n == "x-request-id" {
		v := unsafe.String(unsafe.SliceData(value), len(value))
		if request {
			v = string(value)
		}
		return append(dst, h2.HeaderField{Name: n, Value: v, Sensitive: true})
	}
	return append(dst, h2.HeaderField{Name: n, Value: in.str(value)})
}

// appendFields writes HTTP/2 fields as HTTP/1.1 field lines.
func appendFields(b []byte, fields []h2.HeaderField) []byte {
	for _, fl := range fields {
		if !fl.IsPseudo() {
			b = append(append(append(append(b, fl.Name...), ": "...), fl.Value...), "\r\n"...)
		}
	}
	return b
}

// appendChunk appends body data to an HTTP/1.1 message being built: as
// one chunk when the body is chunked (RFC 9112 §7.1).
func appendChunk(b, data []byte, chunked bool) []byte {
	if !chunked {
		return append(b, data...)
	}
	b = strconv.AppendUint(b, uint64(len(data)), 16)
	b = append(append(b, "\r\n"...), data...)
	return append(b, "\r\n"...)
}

// appendLastChunk ends a chunked body, with its trailer section.
func appendLastChunk(b []byte, trailers []h2.HeaderField) []byte {
	return append(appendFields(append(b, "0\r\n"...), trailers), "\r\n"...)
}

// trailerFields parses a trailer section into HTTP/2 fields, dropping
// the connection-specific ones.
func trailerFields(dst []h2.HeaderField, in *interner, t []byte) []h2.HeaderField {
	for len(t) > 0 {
		line := t
		if j := bytes.IndexByte(t, '\n'); j >= 0 {
			line, t = t[:j], t[j+1:]
		} else {
			t = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		name := fieldName(in, line[:c])
		if !allowedInH2(name) {
			continue
		}
		dst = append(dst, h2.HeaderField{Name: name, Value: in.str(bytes.Trim(line[c+1:], " \t"))})
	}
	return dst
}

// commonNames are field names sent often enough to keep one string of
// each.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"content-type", "content-length", "date", "server", "x-request-id", "cache-control",
		"etag", "last-modified", "expires", "vary", "location", "set-cookie", "content-encoding", "accept-ranges",
		"age", "strict-transport-security", "x-backend", "x-content-type-options", "x-frame-options", "grpc-status",
		"grpc-message", "access-control-allow-origin", "content-security-policy", "alt-svc", "via", "link",
		"user-agent", "accept", "accept-encoding", "accept-language", "authorization", "cookie", "te", "trailer",
		"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "forwarded", "grpc-timeout", "grpc-encoding",
		"grpc-accept-encoding", "origin", "referer"} {
		m[n] = n
	}
	return m
}()

// fieldName is an HTTP/2 (lower-case) field name for b, without
// allocating for the common ones.
func fieldName(in *interner, b []byte) string {
	var buf [32]byte
	if len(b) <= len(buf) {
		l := buf[:len(b)]
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			l[i] = c
		}
		if s, ok := commonNames[string(l)]; ok {
			return s
		}
		return in.str(l)
	}
	return strings.ToLower(string(b))
}

var statusStrings [600]string

func statusText(code int) string {
	if code >= 100 && code < 600 {
		if s := statusStrings[code]; s != "" {
			return s
		}
	}
	return strconv.Itoa(code)
}

func init() {
	for i := 100; i < 600; i++ {
		statusStrings[i] = strconv.Itoa(i)
	}
}

// allowedInH2 drops the HTTP/1.1 connection-specific fields (RFC 9113
// §8.2.2).
func allowedInH2(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te":
		return false
	}
	return true
}
