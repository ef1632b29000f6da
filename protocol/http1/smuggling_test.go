package http1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type badCase struct {
	name string
	in   string // LF is turned into CRLF; write a bare LF as `\n` (backslash n)
	code int
	err  *Error // the specific error, if the case is about one
}

// H is a valid request head prefix for cases about fields and bodies.
const H = "POST / HTTP/1.1\nHost: example.com\n"

// badRequests are malformed or ambiguous requests that a proxy must not
// forward: each is an error from Parser.Parse or from Body.Parse.
func badRequests() []badCase {
	long := strings.Repeat("a", 5000)
	return []badCase{
		// Content-Length (RFC 9112 §6.2, §6.3 points 3 and 5; RFC 9110 §8.6).
		{"CL and TE", H + "Content-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrLengthAndEncoding},
		{"TE and CL", H + "Transfer-Encoding: chunked\nContent-Length: 5\n\n0\n\n", 400, ErrLengthAndEncoding},
		{"CL twice same", H + "Content-Length: 5\nContent-Length: 5\n\nhello", 400, ErrDuplicateLength},
		{"CL twice differ", H + "Content-Length: 5\nContent-Length: 6\n\nhello!", 400, ErrDuplicateLength},
		{"CL list 1,1", H + "Content-Length: 1,1\n\na", 400, ErrBadContentLength},
		{"CL list 5, 5", H + "Content-Length: 5, 5\n\nhello", 400, ErrBadContentLength},
		{"CL non-digit", H + "Content-Length: abc\n\n", 400, ErrBadContentLength},
		{"CL plus sign", H + "Content-Length: +5\n\nhello", 400, ErrBadContentLength},
		{"CL minus sign", H + "Content-Length: -5\n\n", 400, ErrBadContentLength},
		{"CL space inside", H + "Content-Length: 1 2\n\n", 400, ErrBadContentLength},
		{"CL empty", H + "Content-Length:\n\n", 400, ErrBadContentLength},
		{"CL hex", H + "Content-Length: 0x10\n\n", 400, ErrBadContentLength},
		{"CL overflow 2^62+1", H + "Content-Length: 4611686018427387905\n\n", 400, ErrBadContentLength},
		{"CL overflow 2^64", H + "Content-Length: 18446744073709551616\n\n", 400, ErrBadContentLength},
		{"CL with NUL", H + "Content-Length: 5\x00\n\nhello", 400, ErrBadFieldValue},
		{"CL max+1 digit", H + "Content-Length: 46116860184273879040\n\n", 400, ErrBadContentLength},
		{"CL decimal point", H + "Content-Length: 5.0\n\nhello", 400, ErrBadContentLength},

		// Transfer-Encoding (RFC 9112 §6.1, §6.3 point 4).
		{"TE gzip only", H + "Transfer-Encoding: gzip\n\n", 400, ErrChunkedNotLast},
		{"TE chunked, gzip", H + "Transfer-Encoding: chunked, gzip\n\n0\n\n", 400, ErrChunkedNotLast},
		{"TE chunked twice", H + "Transfer-Encoding: chunked, chunked\n\n0\n\n", 400, ErrChunkedTwice},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrEncodingHTTP10},
		{"TE xchunked", H + "Transfer-Encoding: xchunked\n\n0\n\n", 501, ErrUnknownEncoding},
		{"TE identity", H + "Transfer-Encoding: identity\n\n", 501, ErrUnknownEncoding},
		{"TE two fields", H + "Transfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrDuplicateEncoding},
		{"TE gzip then chunked fields", H + "Transfer-Encoding: gzip\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrDuplicateEncoding},
		{"TE parameter", H + "Transfer-Encoding: chunked;q=1\n\n0\n\n", 400, ErrBadEncoding},
		{"TE trailing comma", H + "Transfer-Encoding: chunked,\n\n0\n\n", 400, ErrBadEncoding},
		{"TE leading comma", H + "Transfer-Encoding: , chunked\n\n0\n\n", 400, ErrBadEncoding},
		{"TE empty", H + "Transfer-Encoding:\n\n", 400, ErrBadEncoding},
		{"TE quoted", H + "Transfer-Encoding: \"chunked\"\n\n0\n\n", 400, ErrBadEncoding},
		{"TE space inside", H + "Transfer-Encoding: chun ked\n\n0\n\n", 400, ErrBadEncoding},
		{"TE vertical tab", H + "Transfer-Encoding: \x0bchunked\n\n0\n\n", 400, ErrBadFieldValue},
		{"TE form feed", H + "Transfer-Encoding: chunked\x0c\n\n0\n\n", 400, ErrBadFieldValue},
		{"TE empty then obs-fold", H + "Transfer-Encoding:\n chunked\n\n0\n\n", 400, ErrBadEncoding},
		{"TE obs-fold continuation", H + "Transfer-Encoding: chunked\n , gzip\n\n0\n\n", 400, ErrObsFold},
		{"TE space before colon", H + "Transfer-Encoding : chunked\n\n0\n\n", 400, ErrSpaceBeforeColon},
		{"TE tab before colon", H + "Transfer-Encoding\t: chunked\n\n0\n\n", 400, ErrSpaceBeforeColon},
		{"TE underscore name", H + "Transfer_Encoding: chunked\nContent-Length: 3\n\n0\n\n", 0, nil}, // not TE: a distinct field; CL frames (valid, see TestNotSmuggling)

		// Field syntax (RFC 9112 §2.2, §5; RFC 9110 §5).
		{"obs-fold", H + "X-A: b\n c\n\n", 400, ErrObsFold},
		{"obs-fold tab", H + "X-A: b\n\tc\n\n", 400, ErrObsFold},
		{"whitespace after request line", "GET / HTTP/1.1\n Host: a\n\n", 400, ErrObsFold},
		{"empty field name", H + ": x\n\n", 400, ErrEmptyFieldName},
		{"name with paren", H + "X(A): b\n\n", 400, ErrBadFieldName},
		{"name with slash", H + "X/A: b\n\n", 400, ErrBadFieldName},
		{"name non-ASCII", H + "X-\xc3\xa9: b\n\n", 400, ErrBadFieldName},
		{"line without colon", H + "Host example.com\n\n", 400, ErrSpaceBeforeColon},
		{"name then CRLF", H + "Foo\n\n", 400, ErrBadFieldName},
		{"NUL in value", H + "X-A: a\x00b\n\n", 400, ErrBadFieldValue},
		{"DEL in value", H + "X-A: a\x7fb\n\n", 400, ErrBadFieldValue},
		{"ESC in value", H + "X-A: \x1b[31m\n\n", 400, ErrBadFieldValue},
		{"bare CR in value", H + "X-A: a\rb\n\n", 400, ErrBareCR},
		{"bare CR before LF of field", H + "X-A: a\r\r\n\n", 400, ErrBareCR},
		{"bare LF ends field", H + `X-A: a\n` + "\n", 400, ErrBareLF},
		{"bare LF ends head", H + `\n`, 400, ErrBareLF},
		{"bare LF in value", "GET / HTTP/1.1\nHost: a" + `\n` + "X: b\n\n", 400, ErrBareLF},
		{"bare LF request line", `GET / HTTP/1.1\n` + "Host: a\n\n", 400, ErrBadVersion},
		{"CR CR LF request line", "GET / HTTP/1.1\r\nHost: a\n\n", 400, ErrBareCR},
		{"bare CR ends head", "GET / HTTP/1.1\nHost: a\n\rX", 400, ErrBareCR},

		// Request line (RFC 9112 §3).
		{"method bad char", "GE(T / HTTP/1.1\nHost: a\n\n", 400, ErrBadMethod},
		{"method empty", " / HTTP/1.1\nHost: a\n\n", 400, ErrBadMethod},
		{"double SP after method", "GET  / HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"double SP before version", "GET /  HTTP/1.1\nHost: a\n\n", 400, ErrBadVersion},
		{"HTAB separator", "GET\t/ HTTP/1.1\nHost: a\n\n", 400, ErrBadMethod},
		{"trailing SP", "GET / HTTP/1.1 \nHost: a\n\n", 400, ErrBadVersion},
		{"fragment", "GET /a#frag HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"CTL in target", "GET /a\x01b HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"DEL in target", "GET /a\x7f HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"relative target", "GET a/b HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"asterisk with GET", "GET * HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"CONNECT origin-form", "CONNECT / HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"CONNECT without port", "CONNECT example.com HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"CONNECT empty port", "CONNECT example.com: HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"absolute-form userinfo", "GET http://user:pw@example.com/ HTTP/1.1\nHost: example.com\n\n", 400, ErrBadTarget},
		{"absolute-form empty host", "GET http:///x HTTP/1.1\nHost: a\n\n", 400, ErrBadTarget},
		{"HTTP/0.9", "GET /\n\n", 400, ErrBadTarget},
		{"HTTP/2.0", "GET / HTTP/2.0\nHost: a\n\n", 505, ErrUnsupportedVersion},
		{"HTTP/0.9 version", "GET / HTTP/0.9\nHost: a\n\n", 505, ErrUnsupportedVersion},
		{"lowercase version", "GET / http/1.1\nHost: a\n\n", 400, ErrBadVersion},
		{"version 1.10", "GET / HTTP/1.10\nHost: a\n\n", 400, ErrBadVersion},
		{"version short", "GET / HTTP/1\nHost: a\n\n", 400, ErrBadVersion},
		{"version garbage", "GET / HTTQ/1.1\nHost: a\n\n", 400, ErrBadVersion},
		{"too many empty lines", "\n\n\n\n\nGET / HTTP/1.1\nHost: a\n\n", 400, ErrTooManyEmptyLines},
		{"empty line with bare CR", "\rGET / HTTP/1.1\nHost: a\n\n", 400, ErrBareCR},
		{"request line too long", "GET /" + long + long + " HTTP/1.1\nHost: a\n\n", 414, ErrURITooLong},

		// Host (RFC 9112 §3.2, RFC 9110 §7.2).
		{"missing Host", "GET / HTTP/1.1\nAccept: */*\n\n", 400, ErrMissingHost},
		{"two Host", "GET / HTTP/1.1\nHost: a\nHost: b\n\n", 400, ErrDuplicateHost},
		{"two Host same", "GET / HTTP/1.1\nHost: a\nhost: a\n\n", 400, ErrDuplicateHost},
		{"Host with space", "GET / HTTP/1.1\nHost: a b\n\n", 400, ErrBadHost},
		{"Host with slash", "GET / HTTP/1.1\nHost: a/b\n\n", 400, ErrBadHost},
		{"Host with userinfo", "GET / HTTP/1.1\nHost: user@a\n\n", 400, ErrBadHost},
		{"Host bad port", "GET / HTTP/1.1\nHost: a:80x\n\n", 400, ErrBadHost},
		{"Host bad pct", "GET / HTTP/1.1\nHost: a%zz\n\n", 400, ErrBadHost},
		{"Host unclosed IPv6", "GET / HTTP/1.1\nHost: [::1\n\n", 400, ErrBadHost},

		// Chunked body (RFC 9112 §7.1).
		{"chunk size non-hex", H + "Transfer-Encoding: chunked\n\ng\nx\n0\n\n", 400, ErrBadChunkSize},
		{"chunk size empty", H + "Transfer-Encoding: chunked\n\n\nhello\n0\n\n", 400, ErrBadChunkSize},
		{"chunk size overflow", H + "Transfer-Encoding: chunked\n\n10000000000000000\nx\n0\n\n", 400, ErrChunkSizeOverflow},
		{"chunk size 2^62", H + "Transfer-Encoding: chunked\n\n4000000000000000\nx\n", 400, ErrChunkSizeOverflow},
		{"chunk size 0x", H + "Transfer-Encoding: chunked\n\n0x5\nhello\n0\n\n", 400, ErrBadChunkSize},
		{"chunk size leading SP", H + "Transfer-Encoding: chunked\n\n 5\nhello\n0\n\n", 400, ErrBadChunkSize},
		{"chunk size sign", H + "Transfer-Encoding: chunked\n\n-5\nhello\n0\n\n", 400, ErrBadChunkSize},
		{"chunk size trailing SP", H + "Transfer-Encoding: chunked\n\n5 \nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext empty name", H + "Transfer-Encoding: chunked\n\n5;\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext no name", H + "Transfer-Encoding: chunked\n\n5;=x\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext empty value", H + "Transfer-Encoding: chunked\n\n5;a=\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext unterminated quote", H + "Transfer-Encoding: chunked\n\n5;a=\"x\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext bad byte", H + "Transfer-Encoding: chunked\n\n5;a@b\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk ext CTL in quotes", H + "Transfer-Encoding: chunked\n\n5;a=\"\x01\"\nhello\n0\n\n", 400, ErrBadChunkExt},
		{"chunk line too long", H + "Transfer-Encoding: chunked\n\n5;a=" + long + "\nhello\n0\n\n", 400, ErrChunkLineTooLong},
		{"chunk data too long", H + "Transfer-Encoding: chunked\n\n3\nhello\n0\n\n", 400, ErrBadChunkData},
		{"chunk data no CRLF", H + "Transfer-Encoding: chunked\n\n5\nhello0\n\n", 400, ErrBadChunkData},
		{"chunk data CR only", H + "Transfer-Encoding: chunked\n\n5\nhello\rX0\n\n", 400, ErrBadChunkData},
		{"chunk bare LF size line", H + "Transfer-Encoding: chunked\n\n" + `5\n` + "hello\n0\n\n", 400, ErrBadChunkSize},
		{"chunk bare LF after data", H + "Transfer-Encoding: chunked\n\n5\nhello" + `\n` + "0\n\n", 400, ErrBadChunkData},
		{"chunk bare CR size line", H + "Transfer-Encoding: chunked\n\n5\rhello\n0\n\n", 400, ErrBareCR},
		{"last chunk bare LF", H + "Transfer-Encoding: chunked\n\n" + `0\n` + "\n", 400, ErrBadChunkSize},
		{"final bare LF", H + "Transfer-Encoding: chunked\n\n0\n" + `\n`, 400, ErrBareLF},
		{"trailer obs-fold", H + "Transfer-Encoding: chunked\n\n0\nA: b\n c\n\n", 400, ErrBadTrailer},
		{"trailer space before colon", H + "Transfer-Encoding: chunked\n\n0\nA : b\n\n", 400, ErrBadTrailer},
		{"trailer NUL", H + "Transfer-Encoding: chunked\n\n0\nA: \x00\n\n", 400, ErrBadTrailer},
		{"trailer no colon", H + "Transfer-Encoding: chunked\n\n0\nAbc\n\n", 400, ErrBadTrailer},
		{"trailer bare LF", H + "Transfer-Encoding: chunked\n\n0\nA: b" + `\n` + "\n", 400, ErrBadTrailer},
		{"trailer too large", H + "Transfer-Encoding: chunked\n\n0\nA: " + long + long + "\n\n", 431, ErrTrailersTooLarge},

		// Limits (RFC 6585 §5).
		{"head too large", H + "X-A: " + strings.Repeat(long, 4) + "\n\n", 431, ErrHeadTooLarge},
		{"too many fields", H + strings.Repeat("X-A: b\n", 100) + "\n", 431, ErrTooManyFields},
	}
}

// parseMessage parses a full request: head, then body.
func parseMessage(b []byte, kind Kind) (stage string, err error) {
	h, done, err := parseHead(b, kind, Limits{})
	if err != nil {
		return "head", err
	}
	if !done {
		return "head incomplete", nil
	}
	k, n := h.Body(false, false)
	var bd Body
	bd.Init(k, n, Limits{})
	if _, _, err := bd.Parse(b[h.Len:]); err != nil {
		return "body", err
	}
	return "ok", nil
}

func TestSmuggling(t *testing.T) {
	cases := badRequests()
	rejected := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stage, err := parseMessage([]byte(crlf(c.in)), Request)
			if c.code == 0 {
				require.NoError(t, err)
				return
			}
			rejected++
			require.Error(t, err, "accepted (%s)", stage)
			e, ok := err.(*Error)
			require.True(t, ok)
			require.Equal(t, c.code, e.Code, "%v", err)
			if c.err != nil {
				require.Equal(t, c.err, e, "stage %s", stage)
			}
		})
	}
	require.GreaterOrEqual(t, rejected, 45)
}

// Responses a proxy must not relay: every one is a 502 for the client.
func TestBadResponses(t *testing.T) {
	for _, c := range []badCase{
		{"CL and TE", "HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrLengthAndEncoding},
		{"CL twice", "HTTP/1.1 200 OK\nContent-Length: 3\nContent-Length: 3\n\nabc", 400, ErrDuplicateLength},
		{"CL list", "HTTP/1.1 200 OK\nContent-Length: 3, 3\n\nabc", 400, ErrBadContentLength},
		{"chunked twice", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked, gzip, chunked\n\n", 400, ErrChunkedTwice},
		{"TE two fields", "HTTP/1.1 200 OK\nTransfer-Encoding: gzip\nTransfer-Encoding: chunked\n\n", 400, ErrDuplicateEncoding},
		{"TE in HTTP/1.0", "HTTP/1.0 200 OK\nTransfer-Encoding: chunked\n\n0\n\n", 400, ErrEncodingHTTP10},
		{"status two digits", "HTTP/1.1 20 OK\n\n", 400, ErrBadStatus},
		{"status four digits", "HTTP/1.1 2000 OK\n\n", 400, ErrBadStatus},
		{"status below 100", "HTTP/1.1 099 Low\n\n", 400, ErrBadStatus},
		{"status 000", "HTTP/1.1 000 Zero\n\n", 400, ErrBadStatus},
		{"status above 599", "HTTP/1.1 600 High\n\n", 400, ErrBadStatus},
		{"status letters", "HTTP/1.1 2OO OK\n\n", 400, ErrBadStatus},
		{"status HTAB", "HTTP/1.1 200\tOK\n\n", 400, ErrBadStatus},
		{"reason CTL", "HTTP/1.1 200 O\x01K\n\n", 400, ErrBadStatus},
		{"reason bare LF", "HTTP/1.1 200 OK" + `\n` + "\n", 400, ErrBadStatus},
		{"leading CRLF", "\nHTTP/1.1 200 OK\n\n", 400, ErrBadVersion},
		{"HTTP/2", "HTTP/2 200 OK\n\n", 400, ErrBadVersion},
		{"HTTP/2.0", "HTTP/2.0 200 OK\n\n", 505, ErrUnsupportedVersion},
		{"double SP", "HTTP/1.1  200 OK\n\n", 400, ErrBadStatus},
		{"obs-fold", "HTTP/1.1 200 OK\nX-A: b\n c\n\n", 400, ErrObsFold},
		{"space before colon", "HTTP/1.1 200 OK\nContent-Length : 3\n\nabc", 400, ErrSpaceBeforeColon},
		{"bad chunk", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nz\n\n", 400, ErrBadChunkSize},
		{"status line too long", "HTTP/1.1 200 " + strings.Repeat("k", 9000) + "\n\n", 431, ErrStatusLineTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseMessage([]byte(crlf(c.in)), Response)
			require.Error(t, err)
			e := err.(*Error)
			require.Equal(t, c.err, e)
			require.Equal(t, c.code, e.Code)
			require.Equal(t, 502, e.Status(Response))
		})
	}
}

// Lookalikes that are valid and must keep their meaning.
func TestNotSmuggling(t *testing.T) {
	b := []byte(crlf(H + "Transfer_Encoding: chunked\nContent-Length: 3\n\nabc"))
	h, done, err := parseHead(b, Request, Limits{})
	require.NoError(t, err)
	require.True(t, done)
	require.False(t, h.HasTE)
	require.Equal(t, int64(3), h.ContentLength)

	b = []byte(crlf(H + "Transfer-Encoding: \tchunked \t\n\n0\n\n"))
	h, _, err = parseHead(b, Request, Limits{})
	require.NoError(t, err)
	require.True(t, h.Chunked)
}
