package httpproxy

import (
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/http1"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
)

// The two ends of a request cycle. A front stream is where requests come
// from and responses go: a client's TCP socket, the same socket under
// TLS, or one stream of a client's HTTP/2 connection. A back stream is
// where a request goes: a TCP connection to a backend, or one stream of
// an HTTP/2 connection to it. The cycle reads and writes HTTP/1.1 bytes
// through protocol.Socket on either; what an end does differently is the
// few methods below.

// frontStream is the client side of a cycle.
type frontStream interface {
	protocol.Socket
	// takeResponse sends the final response head as the cycle edited it;
	// kind and left are its body's framing. headAsBytes: the stream
	// carries HTTP/1.1, the cycle writes the head's bytes itself.
	takeResponse(e *http1.Editor, kind http1.BodyKind, left int64) headTaken
	// endBody ends the response's content after a head taken as fields,
	// with a chunked body's trailer section (field lines).
	endBody(trailers []byte) protocol.SocketResult
	// gone reports that the stream ended under the cycle (an HTTP/2
	// stream the client reset): the cycle closes at its next step.
	gone() bool
}

type headTaken uint8

const (
	headAsBytes headTaken = iota // write the head as HTTP/1.1 bytes
	headSent                     // the stream sent it
	headFailed                   // the stream cannot carry the response
)

// backStream is the backend side of a cycle, for one exchange.
type backStream interface {
	protocol.Socket
	// takeRequest takes the request head as the cycle edited it (method
	// is the request's), to send as fields; kind and left are its body's
	// framing. headAsBytes: the cycle writes the head's bytes itself.
	// After headSent, Write takes the body's content and endBody ends it.
	takeRequest(e *http1.Editor, method []byte, kind http1.BodyKind, left int64) headTaken
	endBody(trailers []byte) protocol.SocketResult
	// unprocessed reports that the backend provably did not process the
	// request (an HTTP/2 stream it refused, RFC 9113 §8.7): safe to send
	// again whatever the method.
	unprocessed() bool
	// neverUp reports that the connection under the stream never came
	// up: a failed connect rather than a broken exchange.
	neverUp() bool
	// release ends the cycle's use of the stream: a TCP connection goes
	// to the worker's idle pool when reuse (and the pool has room), else
	// it closes.
	release(s *cycle, reuse bool)
}

// tcpStream is a TCP connection as either end: HTTP/1.1 bytes both ways.
type tcpStream struct{ protocol.TCPSocket }

func (*tcpStream) takeResponse(*http1.Editor, http1.BodyKind, int64) headTaken { return headAsBytes }
func (*tcpStream) takeRequest(*http1.Editor, []byte, http1.BodyKind, int64) headTaken {
	return headAsBytes
}
func (*tcpStream) endBody([]byte) protocol.SocketResult { return protocol.Continue }
func (*tcpStream) gone() bool                           { return false }
func (*tcpStream) unprocessed() bool                    { return false }
func (*tcpStream) neverUp() bool                        { return false }

func (t *tcpStream) release(s *cycle, reuse bool) {
	if !(reuse && (s.bbuf == nil || s.bbuf.Empty()) &&
		s.lw.st.put(s.lp, s.backend, t.TCPSocket, s.backToken, s.lw.l.cfg.MaxIdlePerBackend, s.lw.l.cfg.IdleBackendTimeout)) {
		s.lp.Release(s.backToken, t.Fd())
		t.Close()
	}
}

// tlsStream is a client's TLS connection: HTTP/1.1 bytes under TLS.
type tlsStream struct{ *tlsconn.Socket }

func (*tlsStream) takeResponse(*http1.Editor, http1.BodyKind, int64) headTaken { return headAsBytes }
func (*tlsStream) endBody([]byte) protocol.SocketResult                        { return protocol.Continue }
func (*tlsStream) gone() bool                                                  { return false }

var (
	_ frontStream = (*tcpStream)(nil)
	_ frontStream = (*tlsStream)(nil)
	_ frontStream = (*h2Stream)(nil)
	_ backStream  = (*tcpStream)(nil)
	_ backStream  = (*h2BackStream)(nil)
)
