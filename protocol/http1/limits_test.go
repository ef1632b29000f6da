package http1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// headOfLen builds a valid request head of exactly n bytes.
func headOfLen(n int) []byte {
	base := "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n"
	return []byte(strings.Replace(base, "X-Pad: ", "X-Pad: "+strings.Repeat("p", n-len(base)), 1))
}

func TestMaxHead(t *testing.T) {
	for _, max := range []int{0, 64, 1000, 20000} {
		limits := Limits{MaxHead: max, MaxLine: 1 << 20}
		m := limits.maxHead()
		b := headOfLen(m)
		require.Len(t, b, m)
		h, done, err := parseHead(b, Request, limits)
		require.NoError(t, err)
		require.True(t, done)
		require.Equal(t, m, h.Len)

		_, _, err = parseHead(headOfLen(m+1), Request, limits)
		require.ErrorIs(t, err, ErrHeadTooLarge)
		assert.Equal(t, 431, err.(*Error).Code)

		// Detected as soon as MaxHead bytes were scanned without the end,
		// with no need for more bytes, and not before.
		open := headOfLen(m + 10)[:m]
		var p Parser
		p.Limits = limits
		var hh Head
		done, err = p.Parse(open[:m-1], Request, &hh)
		require.NoError(t, err)
		require.False(t, done)
		_, err = p.Parse(open, Request, &hh)
		require.ErrorIs(t, err, ErrHeadTooLarge)
		assert.Equal(t, m, p.Offset())
	}
}

func TestMaxLine(t *testing.T) {
	limits := Limits{MaxLine: 100}
	line := func(n int) string { // request line of n bytes, CRLF included
		return "GET /" + strings.Repeat("x", n-len("GET / HTTP/1.1\r\n")) + " HTTP/1.1\r\n"
	}
	b := []byte(line(100) + "Host: a\r\n\r\n")
	_, done, err := parseHead(b, Request, limits)
	require.NoError(t, err)
	require.True(t, done)

	b = []byte(line(101) + "Host: a\r\n\r\n")
	_, _, err = parseHead(b, Request, limits)
	require.ErrorIs(t, err, ErrURITooLong)
	assert.Equal(t, 414, err.(*Error).Code)

	// Early: 100 bytes of an unfinished target are enough to decide.
	var p Parser
	p.Limits = limits
	var h Head
	open := []byte("GET /" + strings.Repeat("y", 200))
	done, err = p.Parse(open[:99], Request, &h)
	require.NoError(t, err)
	require.False(t, done)
	_, err = p.Parse(open[:100], Request, &h)
	require.ErrorIs(t, err, ErrURITooLong)

	// Empty lines before the request line do not count toward MaxLine.
	b = []byte("\r\n\r\n" + line(100) + "Host: a\r\n\r\n")
	_, done, err = parseHead(b, Request, limits)
	require.NoError(t, err)
	require.True(t, done)

	// Default: 8 KiB.
	_, _, err = parseHead([]byte(line(DefaultMaxLine+1)+"Host: a\r\n\r\n"), Request, Limits{})
	require.ErrorIs(t, err, ErrURITooLong)
	_, _, err = parseHead([]byte(line(DefaultMaxLine)+"Host: a\r\n\r\n"), Request, Limits{})
	require.NoError(t, err)

	// A status line too.
	_, _, err = parseHead([]byte("HTTP/1.1 200 "+strings.Repeat("r", 100)+"\r\n\r\n"), Response, limits)
	require.ErrorIs(t, err, ErrStatusLineTooLong)
}

func TestMaxFields(t *testing.T) {
	head := func(n int) []byte {
		return []byte("GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", n-1) + "\r\n")
	}
	h, done, err := parseHead(head(100), Request, Limits{})
	require.NoError(t, err)
	require.True(t, done)
	require.Len(t, h.Fields, 100)

	// The 101st field fails on its first byte.
	b := head(101)
	var p Parser
	var hh Head
	_, err = p.Parse(b, Request, &hh)
	require.ErrorIs(t, err, ErrTooManyFields)
	require.Equal(t, len("GET / HTTP/1.1\r\nHost: a\r\n")+99*len("X: y\r\n"), p.Offset())

	_, _, err = parseHead(head(6), Request, Limits{MaxFields: 5})
	require.ErrorIs(t, err, ErrTooManyFields)
}

func TestMaxContentLength(t *testing.T) {
	h, _, err := parseHead([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n"), Request, Limits{})
	require.NoError(t, err)
	require.Equal(t, int64(MaxContentLength), h.ContentLength)

	var bd Body
	bd.Init(BodyChunked, -1, Limits{})
	_, _, err = bd.Parse([]byte("3ffffffffffffff\r\n"))
	require.NoError(t, err)
	bd.Init(BodyChunked, -1, Limits{})
	_, _, err = bd.Parse([]byte("00000003ffffffffffffffff\r\n"))
	require.ErrorIs(t, err, ErrChunkSizeOverflow)
}

func TestBodyLimits(t *testing.T) {
	var bd Body
	// Chunk-size line: bounded with its extensions, CRLF included.
	ext := func(n int) []byte { // a size line of n bytes
		return []byte("1;e=" + strings.Repeat("v", n-len("1;e=\r\n")) + "\r\nx\r\n")
	}
	bd.Init(BodyChunked, -1, Limits{MaxChunkLine: 64})
	_, _, err := bd.Parse(ext(64))
	require.NoError(t, err)
	bd.Init(BodyChunked, -1, Limits{MaxChunkLine: 64})
	n, _, err := bd.Parse(ext(65))
	require.ErrorIs(t, err, ErrChunkLineTooLong)
	assert.Equal(t, 64, n)
	// Leading zeros are not a way around it.
	bd.Init(BodyChunked, -1, Limits{})
	_, _, err = bd.Parse([]byte(strings.Repeat("0", DefaultMaxChunkLine+1)))
	require.ErrorIs(t, err, ErrChunkLineTooLong)

	// Trailers: bytes and count.
	bd.Init(BodyChunked, -1, Limits{MaxTrailers: 32})
	_, done, err := bd.Parse([]byte("0\r\nA: " + strings.Repeat("b", 32-len("A: \r\n\r\n")) + "\r\n\r\n"))
	require.NoError(t, err)
	require.True(t, done)
	bd.Init(BodyChunked, -1, Limits{MaxTrailers: 32})
	_, _, err = bd.Parse([]byte("0\r\nA: " + strings.Repeat("b", 33-len("A: \r\n\r\n")) + "\r\n\r\n"))
	require.ErrorIs(t, err, ErrTrailersTooLarge)
	bd.Init(BodyChunked, -1, Limits{MaxFields: 2})
	_, _, err = bd.Parse([]byte("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"))
	require.ErrorIs(t, err, ErrTrailersTooLarge)
	assert.Equal(t, 2, bd.Trailers())

	// Errors are sticky.
	_, _, err2 := bd.Parse([]byte("\r\n"))
	require.Equal(t, err, err2)
}

func TestLimitsCapped(t *testing.T) {
	assert.Equal(t, maxLimit, Limits{MaxHead: 1 << 40}.maxHead())
	assert.Equal(t, DefaultMaxHead, Limits{MaxHead: -1}.maxHead())
}
