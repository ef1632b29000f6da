package router

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fieldMap is a request's fields for LookupRequest.
type fieldMap map[string]string

func (m fieldMap) Get(name string) ([]byte, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return []byte(v), true
		}
	}
	return nil, false
}

func TestMatchFieldsAndQuery(t *testing.T) {
	r := New()
	add := func(id string, ms ...Match) {
		f := fe(id, HostExact, "example.com", PathPrefix, "/api", "")
		f.Match = ms
		require.NoError(t, r.Add(f))
	}
	add("plain")
	add("canary", Match{Field: "X-Canary", Kind: Equals, Value: "1"})
	add("beta-mobile", Match{Query: "beta", Kind: Exists}, Match{Field: "user-agent", Kind: Regex, Value: `(?i)mobile`})
	add("v2", Match{Query: "version", Kind: Equals, Value: "2 beta"})
	get := func(method, target string, fields fieldMap) string {
		f, ok := r.LookupRequest([]byte("example.com"), []byte(target), []byte(method), fields)
		if !ok {
			return ""
		}
		return f.ID
	}
	for _, c := range []struct {
		target string
		fields fieldMap
		want   string
	}{
		{"/api/x", nil, "plain"},
		{"/api/x", fieldMap{"x-canary": "1"}, "canary"},
		{"/api/x", fieldMap{"X-Canary": "0"}, "plain"},
		{"/api/x?beta", fieldMap{"User-Agent": "Foo Mobile/1"}, "beta-mobile"},
		{"/api/x?beta=&a=1", fieldMap{"User-Agent": "Foo Mobile/1", "X-Canary": "1"}, "beta-mobile"}, // more conditions first
		{"/api/x?beta", fieldMap{"User-Agent": "desktop"}, "plain"},
		{"/api/x?a=1&version=2+beta", nil, "v2"},
		{"/api/x?version=2%20beta#frag", nil, "v2"},
		{"/api/x?vers%69on=2%20beta", nil, "v2"},
		{"/api/x?version=2", nil, "plain"},
		{"/api/x?beta", nil, "plain"}, // no fields: field conditions fail
	} {
		assert.Equal(t, c.want, get("GET", c.target, c.fields), "%s %v", c.target, c.fields)
	}
	// Plain Lookup sees no fields.
	f, ok := r.Lookup([]byte("example.com"), []byte("/api/x?version=2+beta"), []byte("GET"))
	require.True(t, ok)
	assert.Equal(t, "v2", f.ID)

	// The same conditions twice conflict; different ones do not.
	f2 := fe("canary-2", HostExact, "example.com", PathPrefix, "/api", "")
	f2.Match = []Match{{Field: "x-CANARY", Kind: Equals, Value: "1"}}
	assert.ErrorIs(t, r.Add(f2), ErrConflict)
	f2.Match[0].Value = "2"
	assert.NoError(t, r.Add(f2))
	require.NoError(t, r.Remove("canary"))
	assert.Equal(t, "plain", get("GET", "/api/x", fieldMap{"x-canary": "1"}))
}

func TestMatchValidation(t *testing.T) {
	for _, m := range []Match{
		{Kind: Exists},
		{Field: "a", Query: "b"},
		{Field: "bad name"},
		{Field: "a", Kind: Equals, Value: "x\r\ny"},
		{Query: "q", Kind: Regex, Value: "("},
		{Query: "q", Kind: 9},
	} {
		f := fe("x", HostAny, "", PathPrefix, "/", "")
		f.Match = []Match{m}
		assert.ErrorIs(t, New().Add(f), ErrInvalid, "%+v", m)
	}
}

func BenchmarkLookupWithMatch(b *testing.B) {
	r := New()
	f := fe("canary", HostExact, "example.com", PathPrefix, "/", "")
	f.Match = []Match{{Field: "X-Canary", Kind: Equals, Value: "1"}, {Query: "v", Kind: Equals, Value: "2"}}
	require.NoError(b, r.Add(f))
	require.NoError(b, r.Add(fe("plain", HostExact, "example.com", PathPrefix, "/", "")))
	fields := &oneField{"x-canary", []byte("1")}
	host, target, method := []byte("example.com"), []byte("/a?x=1&v=2"), []byte("GET")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if f, _ := r.LookupRequest(host, target, method, fields); f.ID != "canary" {
			b.Fatal(f.ID)
		}
	}
}

type oneField struct {
	name  string
	value []byte
}

func (o *oneField) Get(name string) ([]byte, bool) { return o.value, strings.EqualFold(name, o.name) }
