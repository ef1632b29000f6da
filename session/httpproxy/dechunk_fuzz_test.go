package httpproxy

import (
	"bytes"
	"io"
	"net/http/httputil"
	"testing"

	"github.com/sluiceproxy/sluice/protocol/http1"
)

// FuzzDechunker checks the HTTP/2 bridge's chunk decoder against Go's
// (net/http/httputil) on every chunked body the proxy's own parser
// accepts, fed in pieces of any size to a writer that may take less than
// it is offered: the same data, the same trailer section, the same end.
func FuzzDechunker(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(3), uint8(2))
	f.Add([]byte("3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 7\r\nY: z\r\n\r\n"), uint8(1), uint8(1))
	f.Add([]byte("0\r\n\r\n"), uint8(0), uint8(0))
	f.Add([]byte("1\r\na\r\n00\r\nT: v\r\n\r\n"), uint8(7), uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, split, take uint8) {
		var bd http1.Body
		bd.Init(http1.BodyChunked, 0, http1.Limits{})
		n, done, err := bd.Parse(in)
		if err != nil || !done {
			return // the child's parser refuses it or wants more: never reaches the decoder
		}
		body := in[:n]
		want, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatalf("the proxy's parser accepted %q, Go's reader refused it: %v", body, err)
		}
		var d dechunker
		var got []byte
		write := func(p []byte) int {
			k := len(p)
			if take > 0 && k > int(take) {
				k = int(take) // a stream window smaller than the data
			}
			got = append(got, p[:k]...)
			return k
		}
		step := int(split)%17 + 1
		ended := false
		for at := 0; at < len(body) && !ended; {
			end := min(at+step, len(body))
			piece := body[at:end]
			for len(piece) > 0 && !ended {
				k, _, e := d.feed(piece, write)
				piece, at = piece[k:], at+k
				ended = e
				if k == 0 && !e {
					t.Fatalf("no progress at %d of %q", at, body)
				}
			}
		}
		if !ended {
			t.Fatalf("the decoder did not see the end of %q", body)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("data %q, want %q (body %q)", got, want, body)
		}
		// The trailer section is the body's end, with the fields the
		// proxy's parser counted.
		if !bytes.HasSuffix(body, d.trail) {
			t.Fatalf("trailer %q is not the end of %q", d.trail, body)
		}
		if lines := bytes.Count(d.trail, []byte("\n")) - 1; lines != bd.Trailers() {
			t.Fatalf("trailer %q has %d lines, the parser counted %d fields", d.trail, lines, bd.Trailers())
		}
	})
}
