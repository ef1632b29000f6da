package http1

import (
	"bytes"
	"io"
	"net/http/httputil"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkHead checks the properties every Parse result must have, whatever
// the bytes:
//   - no panic; errors are *Error with one of the documented codes;
//   - parsing at once, or split in two at any point, gives the same
//     result (head, error and body accounting);
//   - "need more" only while fewer than MaxHead bytes were given;
//   - a parsed head lies within b (Len <= len(b), every span inside the
//     head), parses the same from b[:Len] alone (nothing past the head is
//     read), and an Editor without edits reproduces it byte for byte.
func checkHead(t *testing.T, data []byte, kind Kind, split uint, reqHEAD, reqCONNECT bool) {
	want := oneShot(data, kind, reqHEAD, reqCONNECT)
	k := int(split % uint(len(data)+1))
	got := pieces(t, data, kind, reqHEAD, reqCONNECT, []int{k})
	sameOutcome(t, want, got, "split")

	if want.err != nil {
		e, ok := want.err.(*Error)
		require.True(t, ok, "%T", want.err)
		switch e.Code {
		case 400, 414, 431, 501, 505:
		default:
			t.Fatalf("code %d: %v", e.Code, e)
		}
		return
	}
	if !want.done {
		require.Less(t, len(data), DefaultMaxHead)
		return
	}
	h := &want.head
	checkSpans(t, data, h)
	alone, done, err := parseHead(data[:h.Len], kind, Limits{})
	require.NoError(t, err)
	require.True(t, done)
	a, w := *alone, *h
	if len(a.Fields) == 0 {
		a.Fields, w.Fields = nil, nil
	}
	require.Equal(t, w, a)

	var e Editor
	e.Reset(data[:h.Len], h)
	same := append([]byte(nil), data[h.Start:h.Len]...)
	if v := h.Version.Of(data); h.Minor == 1 && string(v) != "HTTP/1.1" {
		copy(same[int(h.Version.Start)-h.Start:], "HTTP/1.1") // a higher 1.x minor goes out as 1.1
	}
	require.Equal(t, same, bytes.Join(e.Segments(nil), nil))
	require.Equal(t, h.Len-h.Start, e.Len())

	if h.Chunked {
		require.True(t, h.HasTE)
		require.Equal(t, int64(-1), h.ContentLength)
	}
	if want.bodyErr != nil {
		_, ok := want.bodyErr.(*Error)
		require.True(t, ok)
	}
	require.LessOrEqual(t, want.bodyUsed, len(data)-h.Len)
}

func FuzzParseRequest(f *testing.F) {
	for i, c := range validCases() {
		if c.kind == Request {
			f.Add(c.bytes(), uint(i*7))
		}
	}
	for i, c := range badRequests() {
		if len(c.in) < 600 {
			f.Add([]byte(crlf(c.in)), uint(i*13))
		}
	}
	f.Add([]byte(crlf(browserGET)), uint(200))
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		checkHead(t, data, Request, split, false, false)
	})
}

func FuzzParseResponse(f *testing.F) {
	for i, c := range validCases() {
		if c.kind == Response {
			f.Add(c.bytes(), uint(i*7))
		}
	}
	for i, s := range []string{
		"HTTP/1.1 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\n\n",
		"HTTP/1.1 099 x\n\n", "HTTP/1.1 200\n\n", "HTTP/1.0 200 OK\n\nbody",
		"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5;a=\"b\"\nhello\n0\nT: v\n\n",
	} {
		f.Add([]byte(crlf(s)), uint(i*11))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		// The low bits of split also choose what the request was.
		checkHead(t, data, Response, split>>2, split&1 != 0, split&2 != 0)
	})
}

// FuzzChunked: Body in chunked mode never panics, accounts for the same
// bytes whether fed at once or in two pieces split anywhere, never claims
// more than it was given, and a body it completes is complete from its
// own bytes alone.
func FuzzChunked(f *testing.F) {
	for i, s := range []string{
		"5\nhello\n0\n\n",
		"5;name=val;q=\"quoted \\\" str\"\nhello\n6 ; ext\n world\n0\nX-Checksum: abc\n\n",
		"1A\nabcdefghijklmnopqrstuvwxyz\n0;last\n\nGET / HTTP/1.1\n",
		"0\nA: b\nC: d\n\n",
		"3\nhello\n0\n\n", "0x5\nhello\n", "ffffffffffffffff\n", "5\nhello\\n0\n\n",
	} {
		f.Add([]byte(crlf(s)), uint(i*5))
	}
	f.Add(chunkedBody(300, 100), uint(150))
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		limits := Limits{MaxChunkLine: 64, MaxTrailers: 128, MaxFields: 4}
		var one Body
		one.Init(BodyChunked, -1, limits)
		n, done, err := one.Parse(data)
		require.LessOrEqual(t, n, len(data))
		if err != nil {
			_, ok := err.(*Error)
			require.True(t, ok)
			require.False(t, done)
		}
		if !done && err == nil {
			require.Equal(t, len(data), n)
		}

		k := int(split % uint(len(data)+1))
		var two Body
		two.Init(BodyChunked, -1, limits)
		n1, done1, err1 := two.Parse(data[:k])
		n2, done2, err2 := 0, done1, err1
		if !done1 && err1 == nil {
			require.Equal(t, k, n1)
			n2, done2, err2 = two.Parse(data[k:])
		}
		require.Equal(t, err, err2)
		require.Equal(t, done, done2)
		require.Equal(t, n, n1+n2)
		require.Equal(t, one.Consumed(), two.Consumed())

		if done {
			var again Body
			again.Init(BodyChunked, -1, limits)
			m, d, e := again.Parse(data[:n])
			require.NoError(t, e)
			require.True(t, d)
			require.Equal(t, n, m)
		}
	})
}

// FuzzChunkedDecode: Decode, fed in two pieces split anywhere and called
// until each piece is used up, accounts for the same bytes with the same
// outcome as Parse, and a body it completes decodes to what the standard
// library's chunked reader reads from the same bytes, trailers apart.
func FuzzChunkedDecode(f *testing.F) {
	for i, s := range []string{
		"5\nhello\n0\n\n",
		"5;name=val\nhello\n6 ; ext\n world\n0\nX-Checksum: abc\nGrpc-Status: 0\n\n",
		"1A\nabcdefghijklmnopqrstuvwxyz\n0;last\n\nGET / HTTP/1.1\n",
		"0\nA: b\nC: d\n\n", "3\nhello\n0\n\n",
	} {
		f.Add([]byte(crlf(s)), uint(i*5))
	}
	f.Add(chunkedBody(300, 100), uint(150))
	f.Fuzz(func(t *testing.T, data []byte, split uint) {
		limits := Limits{MaxChunkLine: 64, MaxTrailers: 128, MaxFields: 4}
		var ref Body
		ref.Init(BodyChunked, -1, limits)
		n, done, err := ref.Parse(data)

		var bd Body
		bd.Init(BodyChunked, -1, limits)
		bd.KeepTrailers()
		k := int(split % uint(len(data)+1))
		var content []byte
		total, gotDone := 0, false
		var gotErr error
		for _, piece := range [][]byte{data[:k], data[k:]} {
			for len(piece) > 0 && !gotDone && gotErr == nil {
				m, d, dn, e := bd.Decode(piece)
				require.LessOrEqual(t, m, len(piece))
				if len(d) > 0 {
					off := cap(piece) - cap(d) // d is a slice of piece
					require.True(t, off >= 0 && off+len(d) <= m, "data within the bytes accounted for")
				}
				content = append(content, d...)
				total += m
				piece = piece[m:]
				gotDone, gotErr = dn, e
				if m == 0 && !dn && e == nil {
					break
				}
			}
		}
		require.Equal(t, err, gotErr)
		require.Equal(t, done, gotDone)
		require.Equal(t, n, total)
		if !done {
			return
		}
		want, rerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data[:n])))
		if rerr == nil {
			require.Equal(t, string(want), string(content))
		}
		for _, line := range bytes.SplitAfter(bd.TrailerSection(), []byte("\r\n")) {
			if len(line) > 0 {
				require.True(t, bytes.HasSuffix(line, []byte("\r\n")) && bytes.IndexByte(line, ':') > 0, "%q", line)
			}
		}
	})
}
