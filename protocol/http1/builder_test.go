package http1

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// build runs a Builder over parts: the method and target (or the status
// and reason), then field names and values in turn.
func build(w *Builder, h *Head, kind Kind, parts []string) ([]byte, error) {
	first, second := "", ""
	if len(parts) > 0 {
		first, parts = parts[0], parts[1:]
	}
	if len(parts) > 0 {
		second, parts = parts[0], parts[1:]
	}
	if kind == Request {
		w.Request(nil, h, first, second)
	} else {
		status := 0
		for _, c := range []byte(first) {
			status = status*10 + int(c%10)
			if status > 999 {
				break
			}
		}
		w.Response(nil, h, status, second)
	}
	for i := 0; i+1 < len(parts); i += 2 {
		w.Field(parts[i], parts[i+1])
	}
	return w.End()
}

// checkBuilt: a head the Builder accepts is one Parse accepts, with the
// same Head; one it refuses has a status to answer with, and, when no
// part holds a line break and no name a colon (so that the parts cannot
// run into each other), is one Parse refuses too.
func checkBuilt(t *testing.T, kind Kind, parts []string, limits Limits) {
	w := Builder{Limits: limits}
	var built Head
	b, err := build(&w, &built, kind, parts)
	p := Parser{Limits: limits}
	var parsed Head
	done, perr := p.Parse(b, kind, &parsed)
	if err == nil {
		require.NoError(t, perr, "%q", b)
		require.True(t, done)
		if len(built.Fields) == 0 {
			built.Fields, parsed.Fields = nil, nil
		}
		require.Equal(t, parsed, built, "%q", b)
		return
	}
	var herr *Error
	require.ErrorAs(t, err, &herr)
	require.GreaterOrEqual(t, herr.Code, 400)
	clean := true
	for i, s := range parts {
		clean = clean && !strings.ContainsAny(s, "\r\n")
		if i >= 2 && i%2 == 0 { // a field name with a colon is a different field line
			clean = clean && !strings.Contains(s, ":")
		}
	}
	if clean {
		require.False(t, done && perr == nil, "Builder refused (%v) what Parse accepts: %q", err, b)
	}
}

func TestBuilderAsParse(t *testing.T) {
	for _, c := range []struct {
		kind  Kind
		parts []string
	}{
		{Request, []string{"GET", "/x?y=1", "Host", "a.example", "Accept", " */* ", "Cookie", "a=1; b=2"}},
		{Request, []string{"POST", "/up", "host", "h", "content-length", "5"}},
		{Request, []string{"POST", "/up", "host", "h", "transfer-encoding", "chunked", "te", "trailers"}},
		{Request, []string{"CONNECT", "h:443", "host", "h:443"}},
		{Request, []string{"OPTIONS", "*", "host", "h"}},
		{Request, []string{"GET", "http://a/x", "host", "b"}},
		{Request, []string{"GET", "/", "host", "h", "content-length", "1", "content-length", "1"}},
		{Request, []string{"GET", "/", "host", "h", "x", "a\r\nInjected: yes"}},
		{Request, []string{"GET", "/", "bad name", "v"}},
		{Request, []string{"GET", "/"}},
		{Request, []string{"G E", "/", "host", "h"}},
		{Response, []string{"200", "OK", "content-type", "text/plain", "content-length", "3"}},
		{Response, []string{"204", "", "server", "s"}},
		{Response, []string{"1000", "x"}},
	} {
		checkBuilt(t, c.kind, c.parts, Limits{})
	}
}

func TestBuilderLimits(t *testing.T) {
	limits := Limits{MaxFields: 2, MaxLine: 32, MaxHead: 96}
	checkBuilt(t, Request, []string{"GET", "/" + strings.Repeat("a", 40), "host", "h"}, limits)
	checkBuilt(t, Request, []string{"GET", "/", "host", "h", "a", "1", "b", "2"}, limits)
	checkBuilt(t, Request, []string{"GET", "/", "host", strings.Repeat("h", 90)}, limits)
	w := Builder{Limits: limits}
	var h Head
	_, err := build(&w, &h, Request, []string{"GET", "/" + strings.Repeat("a", 40), "host", "h"})
	require.ErrorIs(t, err, ErrURITooLong)
}

func TestBuilderDoesNotAllocate(t *testing.T) {
	var w Builder
	var h Head
	buf := make([]byte, 0, 512)
	h.Fields = make([]Field, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		w.Request(buf, &h, "GET", "/index.html")
		w.Field("host", "example.com")
		w.Field("accept", "*/*")
		if _, err := w.End(); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

// FuzzBuilder: parts split from the input at NUL bytes; the first byte
// chooses a request or a response.
func FuzzBuilder(f *testing.F) {
	f.Add([]byte("qGET\x00/x\x00host\x00a\x00accept\x00*/*"))
	f.Add([]byte("q POST\x00/up\x00host\x00h\x00transfer-encoding\x00gzip, chunked"))
	f.Add([]byte("s200\x00OK\x00content-length\x0012"))
	f.Add([]byte("s101\x00\x00upgrade\x00websocket\x00connection\x00upgrade"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		kind := Request
		if data[0]&1 == 1 {
			kind = Response
		}
		var parts []string
		for _, p := range bytes.Split(data[1:], []byte{0}) {
			parts = append(parts, string(p))
		}
		checkBuilt(t, kind, parts, Limits{MaxFields: 8, MaxLine: 256, MaxHead: 1024})
	})
}
