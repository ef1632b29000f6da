package http1

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type validCase struct {
	name                   string
	kind                   Kind
	in                     string // exactly one message, head and body
	reqHEAD, reqCONNECT    bool   // responses: the request was HEAD / CONNECT
	body                   BodyKind
	check                  func(t *testing.T, b []byte, h *Head)
	trailers               int
	limits                 Limits
	untilCloseTakesAllRest bool
}

const browserGET = "GET /articles/2024/http-parsing?ref=home&utm_source=news HTTP/1.1\n" +
	"Host: www.example.com\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\n" +
	"Accept-Language: en-US,en;q=0.5\n" +
	"Accept-Encoding: gzip, deflate, br\n" +
	"Connection: keep-alive\n" +
	"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\n" +
	"Upgrade-Insecure-Requests: 1\n" +
	"\n"

const typicalResponse = "HTTP/1.1 200 OK\n" +
	"Date: Tue, 26 Nov 2024 19:00:00 GMT\n" +
	"Server: origin/1.0\n" +
	"Content-Type: text/html; charset=utf-8\n" +
	"Content-Length: 12\n" +
	"Cache-Control: max-age=60\n" +
	"ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\n" +
	"Vary: Accept-Encoding\n" +
	"\n" +
	"hello world!"

func validCases() []validCase {
	str := func(b []byte, s Span) string { return string(s.Of(b)) }
	return []validCase{
		{name: "minimal GET", in: "GET / HTTP/1.1\nHost: example.com\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "GET", str(b, h.Method))
			assert.Equal(t, MethodGET, h.MethodID)
			assert.Equal(t, "/", str(b, h.Target))
			assert.Equal(t, FormOrigin, h.Form)
			assert.Equal(t, "HTTP/1.1", str(b, h.Version))
			assert.Equal(t, uint8(1), h.Minor)
			assert.True(t, h.HasHost)
			assert.Equal(t, "example.com", str(b, h.Host))
			assert.Equal(t, int64(-1), h.ContentLength)
			assert.True(t, h.KeepAlive())
		}},
		{name: "browser GET", in: browserGET, check: func(t *testing.T, b []byte, h *Head) {
			assert.Len(t, h.Fields, 8)
			assert.Equal(t, "gzip, deflate, br", str(b, h.Fields[4].Value))
			assert.True(t, h.ConnKeepAlive)
			assert.Equal(t, "/articles/2024/http-parsing?ref=home&utm_source=news", str(b, h.Target))
		}},
		{name: "HTTP/1.0 without Host", in: "GET /x HTTP/1.0\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, uint8(0), h.Minor)
			assert.False(t, h.HasHost)
			assert.False(t, h.KeepAlive())
		}},
		{name: "HTTP/1.0 keep-alive", in: "GET /x HTTP/1.0\nConnection: Keep-Alive\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.True(t, h.KeepAlive())
		}},
		{name: "Connection close across fields", in: "GET / HTTP/1.1\nHost: a\nConnection: x-foo\nConnection: , CLOSE ,\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.True(t, h.ConnClose)
			assert.False(t, h.KeepAlive())
			var toks []string
			h.ConnectionTokens(b, func(tok []byte) { toks = append(toks, string(tok)) })
			assert.Equal(t, []string{"x-foo", "CLOSE"}, toks)
		}},
		{name: "POST Content-Length", in: "POST /submit HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Type: text/plain\n\nhello", body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, int64(5), h.ContentLength)
			assert.Equal(t, MethodPOST, h.MethodID)
		}},
		{name: "Content-Length zero", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, int64(0), h.ContentLength)
		}},
		{name: "Content-Length leading zeros and OWS", in: "POST / HTTP/1.1\nHost: a\nContent-Length: \t007 \n\nabcdefg", body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, int64(7), h.ContentLength)
		}},
		{name: "chunked with extensions and trailers", in: "POST /upload HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTrailer: X-Checksum, X-Count\n\n" +
			"5;name=val;q=\"quoted \\\" str\"\nhello\n" +
			"6 ; ext ;x = \"y\"\n world\n" +
			"1A\nabcdefghijklmnopqrstuvwxyz\n" +
			"0;last\nX-Checksum: abc\nX-Count: \t2 \n\n",
			body: BodyChunked, trailers: 2, check: func(t *testing.T, b []byte, h *Head) {
				assert.True(t, h.Chunked)
				assert.True(t, h.HasTE)
			}},
		{name: "chunked HTAB OWS", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding:\tchunked\t\n\n0\n\n", body: BodyChunked},
		{name: "chunked case and codings", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip ,\tChunked\n\n3\nabc\n000\n\n", body: BodyChunked},
		{name: "Expect 100-continue", in: "PUT /f HTTP/1.1\nHost: a\nContent-Length: 3\nExpect: 100-Continue\n\nabc", body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.True(t, h.Expect100)
			assert.Equal(t, MethodPUT, h.MethodID)
		}},
		{name: "HTTP/1.0 ignores Expect and Upgrade", in: "POST / HTTP/1.0\nExpect: 100-continue\nUpgrade: websocket\nContent-Length: 1\n\nx", body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.False(t, h.Expect100)
			assert.False(t, h.HasUpgrade)
		}},
		{name: "Upgrade websocket", in: "GET /chat HTTP/1.1\nHost: server.example.com\nUpgrade: websocket\nConnection: Upgrade\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.True(t, h.ConnUpgrade)
			assert.True(t, h.HasUpgrade)
			assert.Equal(t, "websocket", str(b, h.Upgrade))
		}},
		{name: "absolute-form", in: "GET http://example.com:8080/p?q=1 HTTP/1.1\nHost: example.com:8080\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, FormAbsolute, h.Form)
			assert.Equal(t, "example.com:8080", str(b, h.Authority))
		}},
		{name: "absolute-form no path", in: "GET https://example.com HTTP/1.1\nHost: example.com\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, FormAbsolute, h.Form)
			assert.Equal(t, "example.com", str(b, h.Authority))
		}},
		{name: "CONNECT authority-form", in: "CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, FormAuthority, h.Form)
			assert.Equal(t, MethodCONNECT, h.MethodID)
			assert.Equal(t, "example.com:443", str(b, h.Authority))
		}},
		{name: "CONNECT IPv6", in: "CONNECT [2001:db8::1]:443 HTTP/1.1\nHost: [2001:db8::1]:443\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "[2001:db8::1]:443", str(b, h.Host))
		}},
		{name: "OPTIONS asterisk", in: "OPTIONS * HTTP/1.1\nHost: a\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, FormAsterisk, h.Form)
		}},
		{name: "OPTIONS origin", in: "OPTIONS /x HTTP/1.1\nHost: a\n\n"},
		{name: "leading empty lines", in: "\n\n\n\nGET / HTTP/1.1\nHost: a\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, 8, h.Start)
			assert.Equal(t, "GET", str(b, h.Method))
		}},
		{name: "obs-text in value", in: "GET / HTTP/1.1\nHost: a\nX-Name: caf\xc3\xa9 \xff\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "caf\xc3\xa9 \xff", str(b, h.Fields[1].Value))
		}},
		{name: "empty values", in: "GET / HTTP/1.1\nHost:\nX-A:\nX-B: \t \n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.True(t, h.HasHost)
			assert.Equal(t, 0, h.Host.Len())
			assert.Equal(t, 0, h.Fields[1].Value.Len())
			assert.Equal(t, 0, h.Fields[2].Value.Len())
		}},
		{name: "value inner whitespace kept", in: "GET / HTTP/1.1\nHost: a\nX-A:  a \t b  \n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "a \t b", str(b, h.Fields[1].Value))
		}},
		{name: "extension method and odd target bytes", in: "PROPFIND /dav/%7Euser/a|b{c}?x=\"y\" HTTP/1.1\nHost: a\nDepth: 1\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, MethodOther, h.MethodID)
			assert.Equal(t, "/dav/%7Euser/a|b{c}?x=\"y\"", str(b, h.Target))
		}},
		{name: "Host IPv4 and port", in: "GET / HTTP/1.1\nhOsT: 192.0.2.1:8080\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "192.0.2.1:8080", str(b, h.Host))
		}},
		{name: "Host pct-encoded", in: "GET / HTTP/1.1\nHost: ex%41mple.com\n\n"},
		{name: "HEAD request", in: "HEAD /x HTTP/1.1\nHost: a\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, MethodHEAD, h.MethodID)
		}},

		// Responses.
		{name: "response Content-Length", kind: Response, in: typicalResponse, body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, 200, h.Status)
			assert.Equal(t, "OK", str(b, h.Reason))
			assert.Equal(t, int64(12), h.ContentLength)
		}},
		{name: "response chunked with trailer", kind: Response, in: "HTTP/1.1 404 Not Found\nTransfer-Encoding: chunked\n\n4\nWiki\n5\npedia\nE\n in\n\nchunks.\n0\nExpires: never\n\n", body: BodyChunked, trailers: 1},
		{name: "response 204", kind: Response, in: "HTTP/1.1 204 No Content\nServer: x\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, 204, h.Status)
		}},
		{name: "response 304 with Content-Length", kind: Response, in: "HTTP/1.1 304 Not Modified\nContent-Length: 100\nETag: \"x\"\n\n"},
		{name: "response 100 Continue", kind: Response, in: "HTTP/1.1 100 Continue\n\n"},
		{name: "response 103 Early Hints", kind: Response, in: "HTTP/1.1 103 Early Hints\nLink: </s.css>; rel=preload\n\n"},
		{name: "response 101 switching", kind: Response, in: "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n\n\x81\x05hello", body: BodyTunnel, untilCloseTakesAllRest: true},
		{name: "response to HEAD", kind: Response, reqHEAD: true, in: "HTTP/1.1 200 OK\nContent-Length: 1000\n\n"},
		{name: "response to HEAD chunked", kind: Response, reqHEAD: true, in: "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"},
		{name: "response to CONNECT", kind: Response, reqCONNECT: true, in: "HTTP/1.1 200 Connection Established\n\n\x16\x03\x01", body: BodyTunnel, untilCloseTakesAllRest: true},
		{name: "response to CONNECT refused", kind: Response, reqCONNECT: true, in: "HTTP/1.1 407 Proxy Authentication Required\nContent-Length: 2\n\nno", body: BodyLength},
		{name: "response close-delimited", kind: Response, in: "HTTP/1.0 200 OK\nContent-Type: text/plain\n\nuntil the end", body: BodyUntilClose, untilCloseTakesAllRest: true, check: func(t *testing.T, b []byte, h *Head) {
			assert.False(t, h.KeepAlive())
		}},
		{name: "response gzip close-delimited", kind: Response, in: "HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n\n\x1f\x8b", body: BodyUntilClose, untilCloseTakesAllRest: true},
		{name: "response unknown coding then chunked", kind: Response, in: "HTTP/1.1 200 OK\nTransfer-Encoding: x-custom, chunked\n\n0\n\n", body: BodyChunked},
		{name: "response empty reason", kind: Response, in: "HTTP/1.1 200 \nContent-Length: 0\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, 0, h.Reason.Len())
		}},
		{name: "response no SP no reason", kind: Response, in: "HTTP/1.1 200\nContent-Length: 1\n\nx", body: BodyLength, check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, 200, h.Status)
			assert.Equal(t, 0, h.Reason.Len())
		}},
		{name: "response reason obs-text", kind: Response, in: "HTTP/1.1 500 Erreur \xe9trange\tici\nContent-Length: 0\n\n", check: func(t *testing.T, b []byte, h *Head) {
			assert.Equal(t, "Erreur \xe9trange\tici", str(b, h.Reason))
		}},
		{name: "response 599", kind: Response, in: "HTTP/1.1 599 x\nContent-Length: 0\n\n"},
	}
}

// messages returns the raw bytes of a valid case (LF turned into CRLF).
func (c validCase) bytes() []byte { return []byte(crlf(c.in)) }

// runValid parses the case with the given piece size (0: all at once),
// checks what every valid case must satisfy, and returns the head and the
// number of bytes the whole message took.
func runValid(t *testing.T, c validCase, next string) (*Head, []byte) {
	msg := c.bytes()
	b := append(append([]byte{}, msg...), next...)
	h, done, err := parseHead(b, c.kind, c.limits)
	require.NoError(t, err)
	require.True(t, done)
	checkSpans(t, b, h)
	kind, n := h.Body(c.reqHEAD, c.reqCONNECT)
	require.Equal(t, c.body, kind, "body kind")
	var bd Body
	bd.Init(kind, n, c.limits)
	used, bodyDone, err := bd.Parse(b[h.Len:])
	require.NoError(t, err)
	if c.untilCloseTakesAllRest {
		require.False(t, bodyDone)
		require.Equal(t, len(b)-h.Len, used)
	} else {
		require.True(t, bodyDone)
		require.Equal(t, len(msg), h.Len+used, "message length")
	}
	require.Equal(t, c.trailers, bd.Trailers())
	if c.check != nil {
		c.check(t, b, h)
	}
	return h, b
}

func TestValid(t *testing.T) {
	for _, c := range validCases() {
		t.Run(c.name, func(t *testing.T) {
			next := "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
			if c.kind == Response {
				next = "HTTP/1.1 200 OK\r\n\r\n"
			}
			runValid(t, c, next)
		})
	}
}

// Pipelined requests in one buffer, parsed one after another by offset
// with the same Parser, Head and Body.
func TestPipelined(t *testing.T) {
	buf := []byte(crlf("GET /1 HTTP/1.1\nHost: a\n\n" +
		"POST /2 HTTP/1.1\nHost: a\nContent-Length: 4\n\nbody" +
		"POST /3 HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n2\nhi\n0\n\n" +
		"\nGET /4 HTTP/1.1\nHost: a\nConnection: close\n\n"))
	var (
		p   Parser
		h   Head
		bd  Body
		off int
		got []string
	)
	for off < len(buf) {
		p.Reset()
		b := buf[off:]
		done, err := p.Parse(b, Request, &h)
		require.NoError(t, err)
		require.True(t, done)
		got = append(got, string(h.Target.Of(b)))
		kind, n := h.Body(false, false)
		bd.Init(kind, n, Limits{})
		used, bodyDone, err := bd.Parse(b[h.Len:])
		require.NoError(t, err)
		require.True(t, bodyDone)
		off += h.Len + used
	}
	assert.Equal(t, []string{"/1", "/2", "/3", "/4"}, got)
	assert.True(t, h.ConnClose)
	assert.Equal(t, len(buf), off)
}

func TestBodyKinds(t *testing.T) {
	resp := func(s string) *Head {
		h, done, err := parseHead([]byte(crlf(s)), Response, Limits{})
		require.NoError(t, err)
		require.True(t, done)
		return h
	}
	for _, c := range []struct {
		in            string
		head, connect bool
		kind          BodyKind
		n             int64
	}{
		{"HTTP/1.1 200 OK\nContent-Length: 7\n\n", false, false, BodyLength, 7},
		{"HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, false, BodyNone, 0},
		{"HTTP/1.1 200 OK\n\n", false, false, BodyUntilClose, -1},
		{"HTTP/1.1 200 OK\n\n", true, false, BodyNone, 0},
		{"HTTP/1.1 200 OK\n\n", false, true, BodyTunnel, -1},
		{"HTTP/1.1 204 OK\n\n", false, true, BodyTunnel, -1}, // RFC 9110 §9.3.6: any 2xx
		{"HTTP/1.1 302 Found\nContent-Length: 3\n\n", false, true, BodyLength, 3},
		{"HTTP/1.1 199 x\n\n", false, false, BodyNone, 0},
		{"HTTP/1.1 101 x\n\n", false, false, BodyTunnel, -1},
		{"HTTP/1.1 304 x\nTransfer-Encoding: chunked\n\n", false, false, BodyNone, 0},
		{"HTTP/1.1 200 OK\nTransfer-Encoding: chunked, gzip\n\n", false, false, BodyUntilClose, -1},
	} {
		kind, n := resp(c.in).Body(c.head, c.connect)
		assert.Equal(t, c.kind, kind, c.in)
		assert.Equal(t, c.n, n, c.in)
	}
}

func TestBodyLengthStreaming(t *testing.T) {
	var bd Body
	bd.Init(BodyLength, 10, Limits{})
	n, done, err := bd.Parse([]byte("0123"))
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.False(t, done)
	n, done, err = bd.Parse([]byte("456789NEXT"))
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	assert.True(t, done)
	assert.Equal(t, int64(10), bd.Consumed())
	n, done, err = bd.Parse([]byte("more"))
	assert.Equal(t, 0, n)
	assert.True(t, done)
	assert.NoError(t, err)

	var none Body
	none.Init(BodyNone, 0, Limits{})
	n, done, err = none.Parse([]byte("GET"))
	assert.Equal(t, 0, n)
	assert.True(t, done)
	assert.NoError(t, err)

	var zero Body // behaves as BodyNone
	n, done, err = zero.Parse([]byte("x"))
	assert.Equal(t, 0, n)
	assert.True(t, done)
	assert.NoError(t, err)

	var bad Body
	bad.Init(BodyKind(42), 0, Limits{})
	_, _, err = bad.Parse([]byte("x"))
	assert.ErrorIs(t, err, ErrBodyKind)
	bad.Init(BodyLength, -1, Limits{})
	_, _, err = bad.Parse([]byte("x"))
	assert.ErrorIs(t, err, ErrBodyKind)
}

func TestErrorsClassesAndStatus(t *testing.T) {
	assert.ErrorIs(t, ErrDuplicateLength, ErrBadRequest)
	assert.ErrorIs(t, ErrTooManyFields, ErrHeadTooLarge)
	assert.ErrorIs(t, ErrUnknownEncoding, ErrNotImplemented)
	assert.ErrorIs(t, ErrUnsupportedVersion, ErrVersionNotSupported)
	assert.NotErrorIs(t, ErrTooManyFields, ErrBadRequest)
	assert.NotErrorIs(t, ErrBadRequest, ErrDuplicateLength)
	assert.Equal(t, 431, ErrTooManyFields.Status(Request))
	assert.Equal(t, 502, ErrTooManyFields.Status(Response))
	assert.Equal(t, "http1: more than one Content-Length", ErrDuplicateLength.Error())
	var e *Error
	assert.True(t, errors.As(error(ErrBadHost), &e))
}

// Errors are sticky, done is idempotent, Reset keeps Limits.
func TestParserStateful(t *testing.T) {
	p := Parser{Limits: Limits{MaxFields: 3}}
	var h Head
	_, err := p.Parse([]byte("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), Request, &h)
	require.ErrorIs(t, err, ErrSpaceBeforeColon)
	assert.Equal(t, 20, p.Offset())
	_, err = p.Parse([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Request, &h)
	require.ErrorIs(t, err, ErrSpaceBeforeColon)
	p.Reset()
	assert.Equal(t, 3, p.Limits.MaxFields)
	b := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	done, err := p.Parse(b, Request, &h)
	require.NoError(t, err)
	require.True(t, done)
	done, err = p.Parse(append(b, "XYZ"...), Request, &h)
	require.NoError(t, err)
	require.True(t, done)
	assert.Equal(t, len(b), h.Len)

	p.Reset()
	_, err = p.Parse(b[:10], Request, &h)
	require.NoError(t, err)
	_, err = p.Parse(b[:5], Request, &h)
	assert.ErrorIs(t, err, ErrBufferShrunk)
}

func TestHeadHelpers(t *testing.T) {
	b := []byte(crlf(browserGET))
	h, _, err := parseHead(b, Request, Limits{})
	require.NoError(t, err)
	assert.Equal(t, 1, h.FieldIndex(b, "user-agent", 0))
	assert.Equal(t, -1, h.FieldIndex(b, "user-agent", 2))
	assert.Equal(t, -1, h.FieldIndex(b, "x-missing", 0))
	assert.True(t, EqualFold([]byte("Content-Length"), "content-length"))
	assert.False(t, EqualFold([]byte("Content-Lengt"), "content-length"))
	assert.False(t, EqualFold([]byte("a\xc3"), "a\xe3"))
	assert.Equal(t, "chunked", BodyChunked.String())
	assert.Equal(t, "response", Response.String())
	assert.True(t, strings.HasPrefix(string(h.Version.Of(b)), "HTTP/"))
}
