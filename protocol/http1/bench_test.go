package http1

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	req := []byte(crlf(browserGET))
	var (
		p Parser
		h Head
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		p.Reset()
		if done, err := p.Parse(req, Request, &h); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	resp := []byte(crlf(typicalResponse))
	var (
		p Parser
		h Head
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(resp)))
	for b.Loop() {
		p.Reset()
		if done, err := p.Parse(resp, Response, &h); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}

// Remove two hop-by-hop fields of a browser request (Connection and
// Upgrade-Insecure-Requests, the last field), add
// X-Forwarded-For and X-Request-Id, and produce the writev segments.
func BenchmarkEditRequest(b *testing.B) {
	req := []byte(crlf(browserGET))
	var (
		p    Parser
		h    Head
		e    Editor
		segs [][]byte
		ip   = []byte("192.0.2.7")
		id   = []byte("7f3c2a9e-1b4d-4c8e-9f0a-123456789abc")
	)
	if done, err := p.Parse(req, Request, &h); !done || err != nil {
		b.Fatal(done, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Reset(req[:h.Len], &h)
		e.RemoveNamed("connection")
		e.RemoveNamed("upgrade-insecure-requests")
		_ = e.Add("X-Forwarded-For", ip)
		_ = e.Add("X-Request-Id", id)
		segs = e.Segments(segs[:0])
	}
	if len(segs) != 4 { // head up to Connection, Cookie, added lines, final CRLF
		b.Fatal(len(segs))
	}
}

// A 16 KiB chunked body in 1 KiB chunks, fed as 4 KiB reads.
func BenchmarkChunked(b *testing.B) {
	body := chunkedBody(16<<10, 1<<10)
	var bd Body
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		bd.Init(BodyChunked, -1, Limits{})
		done := false
		for off := 0; off < len(body) && !done; {
			end := min(off+4096, len(body))
			n, d, err := bd.Parse(body[off:end])
			if err != nil {
				b.Fatal(err)
			}
			off += n
			done = d
		}
		if !done {
			b.Fatal("not done")
		}
	}
}

// BenchmarkProxyExchange is what the HTTP session does to one request
// and its response in memory: parse the request, edit it as a reverse
// proxy does (Connection-named and hop-by-hop fields out, forwarding
// fields and a request id in), lay out the writev segments, frame the
// (empty) body, then the same for the response. 0 allocs/op.
func BenchmarkProxyExchange(b *testing.B) {
	req := []byte(crlf(browserGET))
	resp := []byte(crlf(typicalResponse))
	var (
		p, rp      Parser
		h, rh      Head
		e, re      Editor
		body, rb   Body
		segs, rseg [][]byte
	)
	segs, rseg = make([][]byte, 0, 24), make([][]byte, 0, 24)
	xff, id := []byte("192.0.2.1"), []byte("0123456789abcdef")
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	for b.Loop() {
		p.Reset()
		if done, err := p.Parse(req, Request, &h); !done || err != nil {
			b.Fatal(done, err)
		}
		kind, n := h.Body(false, false)
		body.Init(kind, n, Limits{})
		body.Parse(req[h.Len:])
		e.Reset(req[:h.Len], &h)
		e.RemoveConnectionOptions()
		e.RemoveNamed("keep-alive")
		e.Add("X-Forwarded-For", xff)
		e.Add("X-Forwarded-Proto", []byte("http"))
		e.Add("X-Request-Id", id)
		segs = e.Segments(segs[:0])

		rp.Reset()
		if done, err := rp.Parse(resp, Response, &rh); !done || err != nil {
			b.Fatal(done, err)
		}
		kind, n = rh.Body(h.MethodID == MethodHEAD, false)
		rb.Init(kind, n, Limits{})
		rb.Parse(resp[rh.Len:])
		re.Reset(resp[:rh.Len], &rh)
		re.RemoveConnectionOptions()
		re.Add("X-Request-Id", id)
		rseg = re.Segments(rseg[:0])
	}
	if len(segs) == 0 || len(rseg) == 0 {
		b.Fatal("no segments")
	}
}

// BenchmarkBuildRequest: a request head that comes as fields (an HTTP/2
// stream's), written as HTTP/1.1 and indexed by a Builder, against the
// same bytes written and then parsed.
func BenchmarkBuildRequest(b *testing.B) {
	fields := [][2]string{
		{"Host", "example.com"}, {"user-agent", "h2load nghttp2/1.52.0"}, {"accept", "*/*"},
		{"accept-encoding", "gzip, deflate, br"}, {"cookie", "session=0123456789abcdef; theme=dark"},
		{"x-forwarded-for", "192.0.2.1"},
	}
	buf := make([]byte, 0, 512)
	var h Head
	b.Run("builder", func(b *testing.B) {
		var w Builder
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			w.Request(buf, &h, "GET", "/index.html?page=2")
			for _, f := range fields {
				w.Field(f[0], f[1])
			}
			if _, err := w.End(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write-then-parse", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			out := append(buf[:0], "GET /index.html?page=2 HTTP/1.1\r\n"...)
			for _, f := range fields {
				out = append(append(append(append(out, f[0]...), ": "...), f[1]...), "\r\n"...)
			}
			out = append(out, "\r\n"...)
			p.Reset()
			if ok, err := p.Parse(out, Request, &h); !ok || err != nil {
				b.Fatal(err)
			}
		}
	})
}
