package http1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// chunkedBody returns a chunked body of total data bytes in chunks of size
// each, followed by the last chunk.
func chunkedBody(total, size int) []byte {
	var sb strings.Builder
	data := strings.Repeat("d", size)
	for sent := 0; sent < total; sent += size {
		sb.WriteString(strings.ToUpper(strconvHex(size)) + "\r\n" + data + "\r\n")
	}
	sb.WriteString("0\r\n\r\n")
	return []byte(sb.String())
}

func strconvHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n >>= 4 {
		b = append([]byte{digits[n&15]}, b...)
	}
	return string(b)
}

// Parsing and editing with reused state allocates nothing.
func TestZeroAllocs(t *testing.T) {
	req := []byte(crlf(browserGET))
	resp := []byte(crlf(typicalResponse))
	body := chunkedBody(16<<10, 1<<10)
	var (
		p    Parser
		h    Head
		e    Editor
		bd   Body
		segs [][]byte
		ip   = []byte("192.0.2.7")
		id   = []byte("7f3c2a9e-1b4d-4c8e-9f0a-123456789abc")
	)
	run := func() {
		p.Reset()
		if done, err := p.Parse(req, Request, &h); !done || err != nil {
			panic(err)
		}
		e.Reset(req[:h.Len], &h)
		e.RemoveConnectionOptions()
		e.RemoveNamed("upgrade-insecure-requests")
		_ = e.Add("X-Forwarded-For", ip)
		_ = e.Add("X-Request-Id", id)
		segs = e.Segments(segs[:0])
		_ = e.Len()

		p.Reset()
		if done, err := p.Parse(resp, Response, &h); !done || err != nil {
			panic(err)
		}
		kind, n := h.Body(false, false)
		bd.Init(kind, n, Limits{})
		if _, done, err := bd.Parse(resp[h.Len:]); !done || err != nil {
			panic(err)
		}
		e.Reset(resp[:h.Len], &h)
		_ = e.Replace(1, []byte("sluice"))
		segs = e.Segments(segs[:0])

		bd.Init(BodyChunked, -1, Limits{})
		if _, done, err := bd.Parse(body); !done || err != nil {
			panic(err)
		}

		// Errors do not allocate either.
		p.Reset()
		if _, err := p.Parse([]byte("GET / HTTP/1.1\r\nContent-Length: 1,1\r\n"), Request, &h); err == nil {
			panic("accepted")
		}
		var toks int
		h.ConnectionTokens(req, func([]byte) { toks++ })
	}
	require.Zero(t, testing.AllocsPerRun(200, run))
}
