package router

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidation(t *testing.T) {
	ok := fe("id", HostExact, "example.com", PathPrefix, "/", "")
	with := func(edit func(*Frontend)) Frontend {
		f := ok
		edit(&f)
		return f
	}
	redirect := func(a Action) func(*Frontend) {
		return func(f *Frontend) { a.Kind = Redirect; f.Action = a }
	}
	cases := map[string]Frontend{
		"empty id":              with(func(f *Frontend) { f.ID = "" }),
		"empty exact host":      with(func(f *Frontend) { f.Host = "" }),
		"port":                  with(func(f *Frontend) { f.Host = "example.com:80" }),
		"empty port":            with(func(f *Frontend) { f.Host = "example.com:" }),
		"v6 port":               with(func(f *Frontend) { f.Host = "[::1]:80" }),
		"v6 unterminated":       with(func(f *Frontend) { f.Host = "[::1" }),
		"v6 bogus":              with(func(f *Frontend) { f.Host = "[example.com]" }),
		"v4 in brackets":        with(func(f *Frontend) { f.Host = "[127.0.0.1]" }),
		"star in exact":         with(func(f *Frontend) { f.Host = "*.example.com" }),
		"blank in host":         with(func(f *Frontend) { f.Host = "exa mple.com" }),
		"unicode host":          with(func(f *Frontend) { f.Host = "bücher.example" }),
		"empty label":           with(func(f *Frontend) { f.Host = "a..example.com" }),
		"only a dot":            with(func(f *Frontend) { f.Host = "." }),
		"slash in host":         with(func(f *Frontend) { f.Host = "example.com/x" }),
		"too long":              with(func(f *Frontend) { f.Host = strings.Repeat("a.", 128) + "com" }),
		"wildcard without star": with(func(f *Frontend) { f.HostKind = HostWildcard }),
		"wildcard one label":    with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "*.com" }),
		"wildcard star only":    with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "*" }),
		"wildcard two stars":    with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "*.*.example.com" }),
		"wildcard partial":      with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "a*.example.com" }),
		"wildcard inner":        with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "a.*.example.com" }),
		"wildcard port":         with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "*.example.com:443" }),
		"host regex syntax":     with(func(f *Frontend) { f.HostKind, f.Host = HostRegex, "(" }),
		"host regex empty":      with(func(f *Frontend) { f.HostKind, f.Host = HostRegex, "" }),
		"any with host":         with(func(f *Frontend) { f.HostKind = HostAny }),
		"host kind":             with(func(f *Frontend) { f.HostKind = 9 }),
		"prefix no slash":       with(func(f *Frontend) { f.Path = "api" }),
		"exact no slash":        with(func(f *Frontend) { f.PathKind, f.Path = PathExact, "login" }),
		"query in path":         with(func(f *Frontend) { f.Path = "/a?b" }),
		"fragment in path":      with(func(f *Frontend) { f.Path = "/a#b" }),
		"blank in path":         with(func(f *Frontend) { f.Path = "/a b" }),
		"path regex syntax":     with(func(f *Frontend) { f.PathKind, f.Path = PathRegex, "[" }),
		"path regex empty":      with(func(f *Frontend) { f.PathKind, f.Path = PathRegex, "" }),
		"path kind":             with(func(f *Frontend) { f.PathKind = 9 }),
		"method blank":          with(func(f *Frontend) { f.Method = "GE T" }),
		"method slash":          with(func(f *Frontend) { f.Method = "GET/1" }),
		"forward no cluster":    with(func(f *Frontend) { f.Action.Cluster = "" }),
		"action kind":           with(func(f *Frontend) { f.Action.Kind = 7 }),
		"redirect 303":          with(redirect(Action{Status: 303, RedirectScheme: "https"})),
		"redirect 200":          with(redirect(Action{Status: 200, RedirectScheme: "https"})),
		"redirect nowhere":      with(redirect(Action{})),
		"redirect both":         with(redirect(Action{RedirectScheme: "https", RedirectTo: "https://x"})),
		"redirect ftp":          with(redirect(Action{RedirectScheme: "ftp"})),
		"redirect exact scheme": with(redirect(Action{RedirectScheme: "https", RedirectExact: true})),
		"redirect crlf":         with(redirect(Action{RedirectTo: "https://x\r\nSet-Cookie: a=b"})),
		"header name":           with(func(f *Frontend) { f.AddRequestHeaders = []Header{{"Bad Name", "v"}} }),
		"header crlf":           with(func(f *Frontend) { f.AddResponseHeaders = []Header{{"X-A", "v\r\nX-B: w"}} }),
		"header nul":            with(func(f *Frontend) { f.AddRequestHeaders = []Header{{"X-A", "v\x00"}} }),
		"remove empty":          with(func(f *Frontend) { f.RemoveRequestHeaders = []string{""} }),
		"remove bad":            with(func(f *Frontend) { f.RemoveResponseHeaders = []string{"X:Y"} }),
		"hsts lf":               with(func(f *Frontend) { f.HSTS = "max-age=1\n" }),
	}
	r := New()
	for name, f := range cases {
		err := r.Add(f)
		assert.ErrorIs(t, err, ErrInvalid, name)
	}
	assert.Equal(t, 0, r.Len(), "failed Adds change nothing")
	assertEmpty(t, r)

	// Borderline but valid.
	for i, f := range []Frontend{
		with(func(f *Frontend) { f.Host = "under_score.example.com" }),
		with(func(f *Frontend) { f.Host = "xn--bcher-kva.example" }),
		with(func(f *Frontend) { f.Host = "[fe80::1%eth0]" }),
		with(func(f *Frontend) { f.HostKind, f.Host = HostWildcard, "*.co.uk" }),
		with(func(f *Frontend) { f.HostKind, f.Host = HostAny, "" }),
		with(func(f *Frontend) { f.HostKind, f.Host = HostRegex, `(a|b)\.test` }),
		with(func(f *Frontend) { f.Method = "PROPFIND" }),
		with(func(f *Frontend) { f.PathKind, f.Path = PathExact, "" }),
		with(func(f *Frontend) { f.Path, f.Action = "/deny", Action{Kind: Deny} }),
		with(func(f *Frontend) {
			f.Path, f.Action = "/old", Action{Kind: Redirect, Status: 308, RedirectTo: "/new", RedirectExact: true}
		}),
		with(func(f *Frontend) { f.Path, f.HSTS = "/hsts", "max-age=63072000; includeSubDomains; preload" }),
	} {
		f.ID = fmt.Sprint("ok-", i)
		assert.NoError(t, r.Add(f), "%+v", f)
	}
}

func TestDuplicatesAndConflicts(t *testing.T) {
	r := New()
	require.NoError(t, r.Add(fe("a", HostExact, "example.com", PathPrefix, "/api", "")))

	err := r.Add(fe("a", HostExact, "other.com", PathPrefix, "/", ""))
	assert.ErrorIs(t, err, ErrDuplicate)

	for _, f := range []Frontend{
		fe("b", HostExact, "example.com", PathPrefix, "/api", ""),
		fe("b", HostExact, "EXAMPLE.com.", PathPrefix, "/api", ""), // same after normalisation
	} {
		err = r.Add(f)
		assert.ErrorIs(t, err, ErrConflict)
		assert.Contains(t, err.Error(), `"a"`, "names the frontend in the way")
	}
	// Same rule except the action still conflicts: one could never match.
	f := fe("b", HostExact, "example.com", PathPrefix, "/api", "")
	f.Action = Action{Kind: Deny}
	assert.ErrorIs(t, r.Add(f), ErrConflict)

	// Any difference in host, path, kinds or method is a distinct rule.
	for _, f := range []Frontend{
		fe("c1", HostExact, "example.com", PathPrefix, "/api", "GET"),
		fe("c2", HostExact, "example.com", PathExact, "/api", ""),
		fe("c3", HostExact, "example.com", PathRegex, "/api", ""),
		fe("c4", HostExact, "example.com", PathPrefix, "/api/", ""),
		fe("c5", HostRegex, "example.com", PathPrefix, "/api", ""),
		fe("c6", HostExact, "www.example.com", PathPrefix, "/api", ""),
		fe("c7", HostWildcard, "*.example.com", PathPrefix, "/api", ""),
	} {
		assert.NoError(t, r.Add(f), f.ID)
	}
	assert.ErrorIs(t, r.Add(fe("c8", HostExact, "example.com", PathPrefix, "/api", "GET")), ErrConflict)
	assert.Equal(t, 8, r.Len())

	assert.ErrorIs(t, r.Remove("nope"), ErrNotFound)
	require.NoError(t, r.Remove("a"))
	assert.ErrorIs(t, r.Remove("a"), ErrNotFound)
	assert.NoError(t, r.Add(fe("b", HostExact, "example.com", PathPrefix, "/api", "")), "free once a is gone")
	assert.Equal(t, 8, r.Len())

	for _, e := range []error{ErrInvalid, ErrDuplicate, ErrConflict, ErrNotFound} {
		assert.False(t, errors.Is(r.Add(fe("d", HostExact, "d.test", PathPrefix, "/", "")), e))
		require.NoError(t, r.Remove("d"))
	}
}

func TestActionsAsStored(t *testing.T) {
	r := New()
	deny := Frontend{ID: "deny", Host: "example.com", Path: "/admin", Action: Action{Kind: Deny}}
	toHTTPS := Frontend{ID: "https", HostKind: HostAny, Action: Action{Kind: Redirect, RedirectScheme: "HTTPS"}}
	moved := Frontend{
		ID: "moved", Host: "old.example.com", Path: "/", Method: "GET",
		Action: Action{Kind: Redirect, Status: 308, RedirectTo: "https://new.example.com/"},
	}
	fwd := Frontend{
		ID: "fwd", Host: "example.com", Action: Action{Kind: Forward, Cluster: "web"},
		AddRequestHeaders:    []Header{{"X-Route", "fwd"}},
		RemoveRequestHeaders: []string{"X-Debug"},
		AddResponseHeaders:   []Header{{"X-Served-By", "sluice"}},
		RemoveResponseHeaders: []string{
			"Server",
		},
		HSTS: "max-age=31536000",
	}
	for _, f := range []Frontend{deny, toHTTPS, moved, fwd} {
		require.NoError(t, r.Add(f))
	}

	look := func(host, target, method string) *Frontend {
		f, ok := r.Lookup([]byte(host), []byte(target), []byte(method))
		require.True(t, ok, host+target)
		return f
	}
	f := look("example.com", "/admin/users", "GET")
	assert.Equal(t, "deny", f.ID)
	assert.Equal(t, Action{Kind: Deny}, f.Action)

	f = look("example.com", "/", "GET")
	assert.Equal(t, "fwd", f.ID)
	assert.Equal(t, Action{Kind: Forward, Cluster: "web"}, f.Action)
	assert.Equal(t, fwd.AddRequestHeaders, f.AddRequestHeaders)
	assert.Equal(t, fwd.RemoveRequestHeaders, f.RemoveRequestHeaders)
	assert.Equal(t, fwd.AddResponseHeaders, f.AddResponseHeaders)
	assert.Equal(t, fwd.RemoveResponseHeaders, f.RemoveResponseHeaders)
	assert.Equal(t, "max-age=31536000", f.HSTS)
	stored, ok := r.Get("fwd")
	require.True(t, ok)
	assert.Same(t, stored, f, "Lookup returns the stored frontend, not a copy")

	// The stored copy owns its slices.
	fwd.AddRequestHeaders[0].Value = "changed"
	assert.Equal(t, "fwd", f.AddRequestHeaders[0].Value)

	f = look("other.test", "/x?y=1", "GET")
	assert.Equal(t, Action{Kind: Redirect, Status: 301, RedirectScheme: "https"}, f.Action, "301 by default, scheme lower-cased")
	f = look("old.example.com", "/x", "GET")
	assert.Equal(t, moved.Action, f.Action)
	f = look("old.example.com", "/x", "POST")
	assert.Equal(t, "https", f.ID, "method-specific rule does not match POST")

	_, ok = r.Get("nope")
	assert.False(t, ok)
}

func TestAppendLocation(t *testing.T) {
	cases := []struct {
		a            Action
		host, target string
		want         string
	}{
		{Action{RedirectScheme: "https"}, "example.com", "/a?b=1", "https://example.com/a?b=1"},
		{Action{RedirectScheme: "https"}, "example.com:8080", "/", "https://example.com/"},
		{Action{RedirectScheme: "https"}, "[::1]:8080", "/x", "https://[::1]/x"},
		{Action{RedirectScheme: "https"}, " Example.com ", "", "https://Example.com/"},
		{Action{RedirectScheme: "https"}, "example.com", "*", "https://example.com/"},
		{Action{RedirectTo: "https://new.example.com"}, "old", "/p?q", "https://new.example.com/p?q"},
		{Action{RedirectTo: "https://new.example.com/"}, "old", "/p", "https://new.example.com/p"},
		{Action{RedirectTo: "https://new.example.com/base"}, "old", "/p", "https://new.example.com/base/p"},
		{Action{RedirectTo: "https://new.example.com/page", RedirectExact: true}, "old", "/p?q", "https://new.example.com/page"},
	}
	for _, c := range cases {
		got := c.a.AppendLocation([]byte("Location: "), []byte(c.host), []byte(c.target))
		assert.Equal(t, "Location: "+c.want, string(got))
	}
	a := Action{RedirectScheme: "https"}
	buf := make([]byte, 0, 128)
	host, target := []byte("example.com:80"), []byte("/path?q=1")
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = a.AppendLocation(buf[:0], host, target) }))
}

// The hot cases must not allocate: every request runs a Lookup.
func TestLookupDoesNotAllocate(t *testing.T) {
	r := precedenceRouter(t)
	cases := []struct{ host, target, method, want string }{
		{"example.com", "/api/users?id=1", "GET", "ex-api"},
		{"EXAMPLE.com.:443", "/api/users", "POST", "ex-api-post"},
		{"example.com", "/login", "POST", "ex-login-post"},
		{"blog.example.com", "/static/app.js", "GET", "wc-static"},
		{"Blog.Example.Com:8080", "/x", "DELETE", "wc-delete"},
		{"shop.example.com", "/static/x", "GET", "wc-static"},
		{"example.com", "http://example.com/api/x", "GET", "ex-api"},
		{"example.com", "/api/" + strings.Repeat("y", 1000), "GET", "ex-api"},
	}
	for _, c := range cases {
		host, target, method := []byte(c.host), []byte(c.target), []byte(c.method)
		var got *Frontend
		allocs := testing.AllocsPerRun(200, func() { got, _ = r.Lookup(host, target, method) })
		require.NotNil(t, got, c.host+c.target)
		assert.Equal(t, c.want, got.ID)
		assert.Zero(t, allocs, "%s%s", c.host, c.target)
	}

	// A long exact prefix (beyond the compiler's 32-byte stack buffer for
	// conversions) and a miss.
	r = New()
	long := "/" + strings.Repeat("p", 100)
	require.NoError(t, r.Add(fe("long", HostExact, "example.com", PathPrefix, long, "")))
	for _, target := range []string{long + "/x", "/nothing"} {
		host, tg, method := []byte("example.com"), []byte(target), []byte("GET")
		assert.Zero(t, testing.AllocsPerRun(200, func() { r.Lookup(host, tg, method) }), target)
	}
}

func TestReplaceSwapsInOneStep(t *testing.T) {
	r := New()
	require.NoError(t, r.Add(Frontend{ID: "a", Host: "example.com", Action: Action{Cluster: "one"}}))
	// Same host and path: Add would conflict, Replace swaps.
	require.NoError(t, r.Replace(Frontend{ID: "a", Host: "example.com", Action: Action{Cluster: "two"}}))
	f, ok := r.Lookup([]byte("example.com"), []byte("/"), []byte("GET"))
	require.True(t, ok)
	assert.Equal(t, "two", f.Action.Cluster)
	// A replacement that conflicts with another route leaves both alone.
	require.NoError(t, r.Add(Frontend{ID: "b", Host: "example.com", Path: "/b", Action: Action{Cluster: "three"}}))
	assert.Error(t, r.Replace(Frontend{ID: "a", Host: "example.com", Path: "/b", Action: Action{Cluster: "four"}}))
	f, _ = r.Lookup([]byte("example.com"), []byte("/"), []byte("GET"))
	assert.Equal(t, "two", f.Action.Cluster)
	f, _ = r.Lookup([]byte("example.com"), []byte("/b"), []byte("GET"))
	assert.Equal(t, "three", f.Action.Cluster)
	// Replacing an unknown ID adds it.
	require.NoError(t, r.Replace(Frontend{ID: "c", Host: "other.example", Action: Action{Cluster: "five"}}))
	f, ok = r.Lookup([]byte("other.example"), []byte("/"), []byte("GET"))
	require.True(t, ok)
	assert.Equal(t, "five", f.Action.Cluster)
}
