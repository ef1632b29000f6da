package http1

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parsed(t testing.TB, s string, kind Kind) ([]byte, *Head) {
	b := []byte(crlf(s))
	h, done, err := parseHead(b, kind, Limits{})
	require.NoError(t, err)
	require.True(t, done)
	return b[:h.Len], h
}

func joined(segs [][]byte) string { return string(bytes.Join(segs, nil)) }

// aliases reports whether seg lies inside buf.
func aliases(seg, buf []byte) bool {
	if len(seg) == 0 || len(buf) == 0 {
		return false
	}
	s, b := uintptr(unsafe.Pointer(unsafe.SliceData(seg))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return s >= b && s+uintptr(len(seg)) <= b+uintptr(len(buf))
}

const editReq = "GET /a?b HTTP/1.1\nHost: example.com\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: t\n\n"

func TestEditor(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		edit  func(e *Editor, h *Head)
		want  string
		nsegs int
	}{
		{"untouched", editReq, func(e *Editor, h *Head) {}, editReq, 1},
		{"remove first", editReq, func(e *Editor, h *Head) { e.Remove(0) },
			"GET /a?b HTTP/1.1\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: t\n\n", 2},
		{"remove last", editReq, func(e *Editor, h *Head) { e.Remove(5) },
			"GET /a?b HTTP/1.1\nHost: example.com\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\n\n", 2},
		{"remove adjacent", editReq, func(e *Editor, h *Head) { e.Remove(1); e.Remove(2) },
			"GET /a?b HTTP/1.1\nHost: example.com\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: t\n\n", 2},
		{"remove all", editReq, func(e *Editor, h *Head) {
			for i := range h.Fields {
				e.Remove(i)
			}
		}, "GET /a?b HTTP/1.1\n\n", 2},
		{"remove named", editReq, func(e *Editor, h *Head) { e.RemoveNamed("keep-alive"); e.RemoveNamed("CONNECTION") },
			"GET /a?b HTTP/1.1\nHost: example.com\nX-Hop: 1\nAccept: */*\nUser-Agent: t\n\n", 3},
		{"connection options", editReq, func(e *Editor, h *Head) { e.RemoveConnectionOptions() },
			"GET /a?b HTTP/1.1\nHost: example.com\nAccept: */*\nUser-Agent: t\n\n", 3},
		{"connection cannot strip framing", "POST / HTTP/1.1\nHost: a\nContent-Length: 3\nConnection: Content-Length, host, transfer-encoding, x-a\nX-A: 1\n\n",
			func(e *Editor, h *Head) { e.RemoveConnectionOptions() },
			"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\n", 2},
		{"replace", editReq, func(e *Editor, h *Head) { require.NoError(t, e.Replace(5, []byte("Proxy/1.0"))) },
			"GET /a?b HTTP/1.1\nHost: example.com\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: Proxy/1.0\n\n", 3},
		{"replace empty value", "GET / HTTP/1.1\nHost: a\nX-A:   old  \nX-B: b\n\n", func(e *Editor, h *Head) { require.NoError(t, e.Replace(1, nil)) },
			"GET / HTTP/1.1\nHost: a\nX-A:   \nX-B: b\n\n", 2},
		{"replace then remove", editReq, func(e *Editor, h *Head) { _ = e.Replace(0, []byte("x")); e.Remove(0) },
			"GET /a?b HTTP/1.1\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: t\n\n", 2},
		{"remove then replace", "GET / HTTP/1.1\nHost: a\nX-A: 1\n\n", func(e *Editor, h *Head) { e.Remove(1); _ = e.Replace(1, []byte("2")) },
			"GET / HTTP/1.1\nHost: a\nX-A: 2\n\n", 3},
		{"add", editReq, func(e *Editor, h *Head) {
			require.NoError(t, e.Add("X-Forwarded-For", []byte("192.0.2.7")))
			require.NoError(t, e.Add("X-Request-Id", []byte("f00d")))
		}, "GET /a?b HTTP/1.1\nHost: example.com\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=5\nUser-Agent: t\n" +
			"X-Forwarded-For: 192.0.2.7\nX-Request-Id: f00d\n\n", 3},
		{"add to empty", "GET / HTTP/1.0\n\n", func(e *Editor, h *Head) { _ = e.Add("Via", []byte("1.0 sluice")) },
			"GET / HTTP/1.0\nVia: 1.0 sluice\n\n", 3},
		{"everything", editReq, func(e *Editor, h *Head) {
			e.RemoveConnectionOptions()
			_ = e.Replace(0, []byte("backend.internal"))
			_ = e.Add("Via", []byte("1.1 sluice"))
			require.NoError(t, e.SetTarget([]byte("/v2/a?b")))
		}, "GET /v2/a?b HTTP/1.1\nHost: backend.internal\nAccept: */*\nUser-Agent: t\nVia: 1.1 sluice\n\n", 0},
		{"leading empty lines dropped", "\n\nGET / HTTP/1.1\nHost: a\n\n", func(e *Editor, h *Head) {}, "GET / HTTP/1.1\nHost: a\n\n", 1},
		{"response", "HTTP/1.1 200 OK\nConnection: close\nContent-Length: 0\n\n", func(e *Editor, h *Head) {
			e.RemoveNamed("connection")
			_ = e.Add("Server", []byte("sluice"))
		}, "HTTP/1.1 200 OK\nContent-Length: 0\nServer: sluice\n\n", 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind := Request
			if c.in[0] == 'H' {
				kind = Response
			}
			head, h := parsed(t, c.in, kind)
			var e Editor
			e.Reset(head, h)
			c.edit(&e, h)
			segs := e.Segments(nil)
			want := crlf(c.want)
			require.Equal(t, want, joined(segs))
			require.Equal(t, len(want), e.Len())
			require.Equal(t, want, string(e.AppendTo(nil)))
			if c.nsegs > 0 {
				assert.Len(t, segs, c.nsegs)
			}
			for _, s := range segs {
				assert.NotEmpty(t, s)
			}
			// The result must itself parse (removing Host is the caller's business).
			b := []byte(want)
			h2, done, err := parseHead(b, kind, Limits{})
			if err == ErrMissingHost {
				return
			}
			require.NoError(t, err)
			require.True(t, done)
			require.Equal(t, len(b), h2.Len)
		})
	}
}

// Untouched runs are sub-slices of the original head; new bytes are not.
func TestEditorAliasing(t *testing.T) {
	head, h := parsed(t, editReq, Request)
	var e Editor
	e.Reset(head, h)
	e.Remove(1)
	require.NoError(t, e.Add("X-Forwarded-For", []byte("192.0.2.7")))
	segs := e.Segments(nil)
	require.Len(t, segs, 4)
	assert.True(t, aliases(segs[0], head))
	assert.True(t, aliases(segs[1], head))
	assert.False(t, aliases(segs[2], head))
	assert.True(t, aliases(segs[3], head))
	assert.Equal(t, unsafe.SliceData(head), unsafe.SliceData(segs[0]))

	// Mutating the source shows through: nothing was copied.
	i := bytes.Index(head, []byte("Accept"))
	head[i] = 'a'
	assert.Contains(t, joined(segs), "\r\naccept: */*\r\n")

	// Values given to Replace and Add are copied.
	v := []byte("value")
	e.Reset(head, h)
	require.NoError(t, e.Replace(0, v))
	require.NoError(t, e.Add("X-B", v))
	v[0] = 'V'
	assert.Contains(t, joined(e.Segments(nil)), "Host: value\r\n")
	assert.Contains(t, joined(e.Segments(nil)), "X-B: value\r\n")
}

func TestEditorRejectsInjection(t *testing.T) {
	head, h := parsed(t, editReq, Request)
	var e Editor
	e.Reset(head, h)
	for _, v := range []string{"a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00", "\x7f"} {
		assert.ErrorIs(t, e.Add("X-A", []byte(v)), ErrInvalidEdit, "%q", v)
		assert.ErrorIs(t, e.Replace(0, []byte(v)), ErrInvalidEdit, "%q", v)
	}
	for _, n := range []string{"", "X A", "X:A", "X\r\nA", "é"} {
		assert.ErrorIs(t, e.Add(n, []byte("v")), ErrInvalidEdit, "%q", n)
	}
	for _, tg := range []string{"", "/a b", "/a#b", "/\r\n"} {
		assert.ErrorIs(t, e.SetTarget([]byte(tg)), ErrInvalidEdit, "%q", tg)
	}
	assert.Equal(t, crlf(editReq), joined(e.Segments(nil)))

	rh, rhd := parsed(t, "HTTP/1.1 200 OK\n\n", Response)
	e.Reset(rh, rhd)
	assert.ErrorIs(t, e.SetTarget([]byte("/")), ErrInvalidEdit)
}

// Reset reuses the editor for another head of a different size.
func TestEditorReuse(t *testing.T) {
	var e Editor
	head, h := parsed(t, editReq, Request)
	e.Reset(head, h)
	e.Remove(0)
	_ = e.Add("A", []byte("b"))
	head2, h2 := parsed(t, "GET / HTTP/1.1\nHost: z\n\n", Request)
	e.Reset(head2, h2)
	assert.Equal(t, crlf("GET / HTTP/1.1\nHost: z\n\n"), joined(e.Segments(nil)))
}

// Get, Set and Del see and change the edited head, added fields included,
// so that hooks running one after another compose.
func TestEditorGetSetDel(t *testing.T) {
	head, h := parsed(t, editReq, Request)
	var e Editor
	e.Reset(head, h)
	v, ok := e.Get("HOST")
	assert.True(t, ok)
	assert.Equal(t, "example.com", string(v))
	_, ok = e.Get("x-tenant")
	assert.False(t, ok)

	require.NoError(t, e.Set("X-Tenant", []byte("acme")))
	require.NoError(t, e.Add("X-Other", []byte("1")))
	require.NoError(t, e.Set("x-tenant", []byte("globex"))) // replaces the added one
	v, _ = e.Get("X-TENANT")
	assert.Equal(t, "globex", string(v))
	require.NoError(t, e.Set("Host", []byte("internal")))
	v, _ = e.Get("host")
	assert.Equal(t, "internal", string(v))
	e.Del("user-agent")
	e.Del("x-other")
	require.NoError(t, e.Replace(4, []byte("timeout=9")))
	v, _ = e.Get("keep-alive")
	assert.Equal(t, "timeout=9", string(v))
	require.NoError(t, e.SetTarget([]byte("/b?c")))
	assert.Equal(t, "/b?c", string(e.Target()))

	want := crlf("GET /b?c HTTP/1.1\nConnection: keep-alive, X-Hop\nX-Hop: 1\nAccept: */*\nKeep-Alive: timeout=9\nx-tenant: globex\nHost: internal\n\n")
	assert.Equal(t, want, joined(e.Segments(nil)))
	assert.Equal(t, len(want), e.Len())

	assert.ErrorIs(t, e.Set("bad name", []byte("x")), ErrInvalidEdit)
	assert.ErrorIs(t, e.Set("X-A", []byte("a\r\nInjected: 1")), ErrInvalidEdit)
	v, _ = e.Get("host")
	assert.Equal(t, "internal", string(v), "a refused Set changes nothing")
}

func TestEditorSetStatus(t *testing.T) {
	for _, in := range []string{"HTTP/1.1 200 OK\nServer: x\nContent-Length: 0\n\n", "HTTP/1.0 200\n\n"} {
		head, h := parsed(t, in, Response)
		var e Editor
		e.Reset(head, h)
		require.NoError(t, e.SetStatus(403, "Forbidden"))
		out := joined(e.Segments(nil))
		assert.True(t, strings.HasPrefix(out, "HTTP/1.1 403 Forbidden\r\n"), out)
		assert.Equal(t, len(out), e.Len())
		assert.Equal(t, strings.TrimPrefix(crlf(in), crlf(in)[:strings.Index(crlf(in), "\r\n")]), strings.TrimPrefix(out, "HTTP/1.1 403 Forbidden"))
		assert.ErrorIs(t, e.SetStatus(42, "x"), ErrInvalidEdit)
		assert.ErrorIs(t, e.SetStatus(200, "a\nb"), ErrInvalidEdit)
	}
	head, h := parsed(t, editReq, Request)
	var e Editor
	e.Reset(head, h)
	assert.ErrorIs(t, e.SetStatus(200, "OK"), ErrInvalidEdit, "not on a request")
}

// A higher HTTP/1.x minor is handled as 1.1 and goes out as HTTP/1.1
// (RFC 9110 §2.5), whatever else the edits change.
func TestEditorForwardsHigherMinorAsHTTP11(t *testing.T) {
	head, h := parsed(t, "GET /a HTTP/1.2\nHost: a\n\n", Request)
	assert.EqualValues(t, 1, h.Minor)
	var e Editor
	e.Reset(head, h)
	assert.Equal(t, crlf("GET /a HTTP/1.1\nHost: a\n\n"), joined(e.Segments(nil)))
	require.NoError(t, e.SetTarget([]byte("/b")))
	require.NoError(t, e.Add("X", []byte("1")))
	out := joined(e.Segments(nil))
	assert.Equal(t, crlf("GET /b HTTP/1.1\nHost: a\nX: 1\n\n"), out)
	assert.Equal(t, len(out), e.Len())

	head, h = parsed(t, "HTTP/1.9 200 OK\nContent-Length: 0\n\n", Response)
	e.Reset(head, h)
	assert.Equal(t, crlf("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), joined(e.Segments(nil)))
	head, h = parsed(t, "GET / HTTP/1.0\n\n", Request)
	e.Reset(head, h)
	assert.Equal(t, crlf("GET / HTTP/1.0\n\n"), joined(e.Segments(nil)), "1.0 stays 1.0")
}
