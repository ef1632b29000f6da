package router

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fwd(id string) Action { return Action{Kind: Forward, Cluster: "c-" + id} }

// fe builds a forwarding frontend whose cluster is derived from its ID,
// to keep the tables short.
func fe(id string, hk HostKind, host string, pk PathKind, path, method string) Frontend {
	return Frontend{ID: id, HostKind: hk, Host: host, PathKind: pk, Path: path, Method: method, Action: fwd(id)}
}

// precedenceRouter mixes every host and path kind; the frontends are
// added in an order that differs from precedence on purpose, so that the
// table checks the ordering rather than insertion luck.
func precedenceRouter(t testing.TB) *Router {
	r := New()
	for _, f := range []Frontend{
		fe("any-root", HostAny, "", PathPrefix, "/", ""),
		fe("any-health", HostAny, "", PathExact, "/health", ""),
		fe("any-user", HostAny, "", PathRegex, `/u/[a-z]+`, ""),
		fe("any-ro-get", HostAny, "", PathPrefix, "/ro", "GET"),

		fe("rx-node", HostRegex, `node[0-9]+\.example\.org`, PathPrefix, "/", ""),
		fe("rx-org-metrics", HostRegex, `.*\.example\.org`, PathPrefix, "/metrics", ""),
		fe("rx-net-health", HostRegex, `api\.example\.net`, PathExact, "/health", ""),
		fe("rx-net-api", HostRegex, `api\.example\.net`, PathRegex, `/v[0-9]+/.*`, ""),

		fe("wc-root", HostWildcard, "*.example.com", PathPrefix, "", ""),
		fe("wc-static", HostWildcard, "*.example.com", PathPrefix, "/static/", ""),
		{ID: "wc-delete", HostKind: HostWildcard, Host: "*.Example.com", Path: "/", Method: "DELETE", Action: Action{Kind: Deny}},

		fe("ex-api-rx", HostExact, "example.com", PathRegex, `/api/v[0-9]+/.*`, ""),
		fe("ex-root", HostExact, "example.com", PathPrefix, "/", ""),
		fe("ex-api", HostExact, "example.com", PathPrefix, "/api", ""),
		fe("ex-api-v1", HostExact, "example.com", PathPrefix, "/api/v1/", ""),
		fe("ex-api-post", HostExact, "example.com", PathPrefix, "/api", "POST"),
		fe("ex-login", HostExact, "example.com", PathExact, "/login", ""),
		fe("ex-login-post", HostExact, "example.com", PathExact, "/login", "POST"),

		fe("shop-cart", HostExact, "shop.example.com", PathPrefix, "/cart", ""),
		fe("shop-png", HostExact, "shop.example.com", PathRegex, `/img/.*\.png`, ""),
		fe("shop-png-put", HostExact, "shop.example.com", PathRegex, `/img/.*\.png`, "PUT"),
	} {
		require.NoError(t, r.Add(f), f.ID)
	}
	return r
}

func TestPrecedence(t *testing.T) {
	r := precedenceRouter(t)
	cases := []struct {
		host, path, method string
		want               string // "" for no match
		why                string
	}{
		// Exact host, path kinds and methods.
		{"example.com", "/", "GET", "ex-root", "prefix /"},
		{"example.com", "/index.html", "GET", "ex-root", "prefix /"},
		{"example.com", "/api", "GET", "ex-api", "longest prefix"},
		{"example.com", "/api/users", "GET", "ex-api", "longest prefix"},
		{"example.com", "/api/users", "POST", "ex-api-post", "method-specific beats any method, same path"},
		{"example.com", "/api/users", "post", "ex-api", "methods are case-sensitive"},
		{"example.com", "/api/v1/users", "GET", "ex-api-v1", "longer prefix"},
		{"example.com", "/api/v1/users", "POST", "ex-api-v1", "a longer prefix beats a method match on a shorter one"},
		{"example.com", "/api/v1", "GET", "ex-api", "/api/v1/ needs its slash"},
		{"example.com", "/apiary", "GET", "ex-api", "prefixes are byte prefixes"},
		{"example.com", "/api/v2/x", "GET", "ex-api", "prefix beats regex"},
		{"example.com", "/login", "GET", "ex-login", "exact path"},
		{"example.com", "/login", "POST", "ex-login-post", "exact path, method-specific"},
		{"example.com", "/login/", "GET", "ex-root", "exact means exact"},
		{"example.com", "/static/app.js", "GET", "ex-root", "wildcard does not match the apex; exact host wins anyway"},
		{"example.com", "/health", "GET", "ex-root", "host first: an exact host's prefix beats HostAny's exact path"},

		// Exact host that only covers some paths falls through.
		{"shop.example.com", "/cart/42", "GET", "shop-cart", "exact host"},
		{"shop.example.com", "/img/a/b.png", "GET", "shop-png", "path regex"},
		{"shop.example.com", "/img/a/b.png", "PUT", "shop-png-put", "path regex, method-specific"},
		{"shop.example.com", "/img/a.gif", "GET", "wc-root", "no exact-host rule: fall through to wildcard"},
		{"shop.example.com", "/static/x.css", "GET", "wc-static", "fall through, longest wildcard prefix"},
		{"shop.example.com", "/x", "DELETE", "wc-delete", "fall through, method rule"},

		// Wildcard.
		{"blog.example.com", "/", "GET", "wc-root", "one label"},
		{"blog.example.com", "/post/1", "DELETE", "wc-delete", "method-specific"},
		{"blog.example.com", "/static/app.js", "DELETE", "wc-static", "longer prefix beats method"},
		{"a.b.example.com", "/", "GET", "any-root", "wildcard is one label only"},
		{".example.com", "/", "GET", "any-root", "empty label is no label"},
		{"example.com.evil.test", "/", "GET", "any-root", "suffix elsewhere"},

		// Regex hosts, in insertion order.
		{"node1.example.org", "/", "GET", "rx-node", "first regex"},
		{"node1.example.org", "/metrics", "GET", "rx-node", "regex hosts in insertion order, even against a longer prefix in a later one"},
		{"web.example.org", "/metrics/cpu", "GET", "rx-org-metrics", "second regex"},
		{"web.example.org", "/other", "GET", "any-root", "regex host without a matching path falls to any"},
		{"node1x.example.org", "/", "GET", "any-root", "anchored at the end"},
		{"xnode1.example.org", "/metrics", "GET", "rx-org-metrics", "anchored at the start"},
		{"NODE7.Example.ORG", "/", "GET", "rx-node", "case-insensitive"},
		{"api.example.net", "/health", "GET", "rx-net-health", "regex host, exact path"},
		{"api.example.net", "/health/x", "GET", "any-root", "exact path only"},
		{"api.example.net", "/v2/users", "GET", "rx-net-api", "regex host, regex path"},
		{"api.example.net", "/V2/users", "GET", "any-root", "path regexes are case-sensitive"},
		{"api.example.net", "/v2", "GET", "any-root", "path regexes are anchored"},

		// HostAny.
		{"unknown.test", "/", "GET", "any-root", "default"},
		{"unknown.test", "/health", "GET", "any-health", "exact beats prefix"},
		{"unknown.test", "/u/bob", "GET", "any-root", "any prefix, even /, shadows the same host's regex paths"},
		{"unknown.test", "/ro/file", "GET", "any-ro-get", "method prefix"},
		{"unknown.test", "/ro/file", "HEAD", "any-root", "other method falls back"},
		{"", "/", "GET", "any-root", "no Host at all"},
	}
	for _, c := range cases {
		t.Run(c.host+c.path+"_"+c.method, func(t *testing.T) {
			f, ok := r.Lookup([]byte(c.host), []byte(c.path), []byte(c.method))
			if c.want == "" {
				assert.False(t, ok, c.why)
				return
			}
			require.True(t, ok, c.why)
			assert.Equal(t, c.want, f.ID, c.why)
		})
	}
}

// Without a HostAny rule, a request that nothing else covers is a miss.
func TestNoMatch(t *testing.T) {
	r := New()
	require.NoError(t, r.Add(fe("a", HostExact, "example.com", PathPrefix, "/api/", "")))
	for _, c := range [][3]string{
		{"example.com", "/", "GET"},
		{"other.com", "/api/x", "GET"},
		{"", "/api/x", "GET"},
		{"example.com", "*", "OPTIONS"},
	} {
		f, ok := New().Lookup([]byte(c[0]), []byte(c[1]), []byte(c[2]))
		assert.False(t, ok)
		assert.Nil(t, f)
		_, ok = r.Lookup([]byte(c[0]), []byte(c[1]), []byte(c[2]))
		assert.False(t, ok, c)
	}
}

func TestHostNormalisation(t *testing.T) {
	r := New()
	for _, f := range []Frontend{
		fe("name", HostExact, "Example.COM.", PathPrefix, "/", ""),
		fe("v4", HostExact, "127.0.0.1", PathPrefix, "/", ""),
		fe("v6", HostExact, "::1", PathPrefix, "/", ""),
		fe("v6b", HostExact, "[2001:DB8::1]", PathPrefix, "/", ""),
		fe("wc", HostWildcard, "*.Example.NET.", PathPrefix, "/", ""),
		fe("rx", HostRegex, `.*\.Example\.org`, PathPrefix, "/", ""),
	} {
		require.NoError(t, r.Add(f))
	}
	stored, _ := r.Get("name")
	assert.Equal(t, "example.com", stored.Host)
	stored, _ = r.Get("v6b")
	assert.Equal(t, "2001:db8::1", stored.Host)
	stored, _ = r.Get("wc")
	assert.Equal(t, "*.example.net", stored.Host)
	stored, _ = r.Get("rx")
	assert.Equal(t, `.*\.Example\.org`, stored.Host, "regexes are stored as given")

	cases := map[string]string{
		"example.com":          "name",
		"EXAMPLE.com":          "name",
		"example.com.":         "name",
		"EXAMPLE.com.":         "name",
		"example.com:80":       "name",
		"Example.Com.:8443":    "name",
		"example.com:":         "name",
		" example.com\t":       "name",
		"127.0.0.1":            "v4",
		"127.0.0.1:8080":       "v4",
		"[::1]":                "v6",
		"[::1]:8080":           "v6",
		"::1":                  "v6",
		"[2001:db8::1]:443":    "v6b",
		"[2001:DB8::1]":        "v6b",
		"WWW.example.net":      "wc",
		"www.example.net.:443": "wc",
		"a.example.ORG":        "rx",
		"a.example.org.:8443":  "rx",
		"example.com..":        "",
		"[::2]:80":             "",
		"exampl.com":           "",
		"127.0.0.1.1":          "",
		"[::1":                 "",
	}
	for host, want := range cases {
		f, ok := r.Lookup([]byte(host), []byte("/"), []byte("GET"))
		if want == "" {
			assert.False(t, ok, "%q matched %v", host, f)
			continue
		}
		if assert.True(t, ok, host) {
			assert.Equal(t, want, f.ID, host)
		}
	}
}

// Hosts too long to be exact or wildcard hosts still reach regex and any
// rules instead of being dropped.
func TestLongHost(t *testing.T) {
	r := New()
	require.NoError(t, r.Add(fe("ex", HostExact, "example.com", PathPrefix, "/", "")))
	require.NoError(t, r.Add(fe("rx", HostRegex, `a+\.example\.com`, PathPrefix, "/", "")))
	require.NoError(t, r.Add(fe("any", HostAny, "", PathPrefix, "/", "")))
	long := strings.Repeat("a", 300) + ".example.com"
	f, ok := r.Lookup([]byte(long+":80"), []byte("/"), nil)
	require.True(t, ok)
	assert.Equal(t, "rx", f.ID)
	f, ok = r.Lookup([]byte(strings.Repeat("b", 300)), []byte("/"), nil)
	require.True(t, ok)
	assert.Equal(t, "any", f.ID)
}

func TestPathNormalisation(t *testing.T) {
	r := New()
	for _, f := range []Frontend{
		fe("root", HostExact, "example.com", PathPrefix, "/", ""),
		fe("login", HostExact, "example.com", PathExact, "/login", ""),
		fe("api", HostExact, "example.com", PathPrefix, "/api/", ""),
		fe("rx", HostExact, "example.org", PathRegex, `/r/[0-9]+`, ""),
		fe("any-ast", HostAny, "", PathRegex, `\*`, "OPTIONS"),
	} {
		require.NoError(t, r.Add(f))
	}
	cases := map[string]string{
		"/login?next=/api/":                "login",
		"/login#top":                       "login",
		"/login?":                          "login",
		"/api/x?y=1":                       "api",
		"/api?/api/":                       "root",
		"":                                 "root",
		"?q":                               "root",
		"http://example.com/login?x":       "login",
		"https://other.example/api/v1":     "api", // the Host header decides the host
		"http://example.com":               "root",
		"http://example.com?login":         "root",
		"/LOGIN":                           "root",
		"/login/../api/":                   "root", // no dot-segment removal
		"/%61pi/":                          "root", // no percent-decoding
		"/api/" + strings.Repeat("x", 500): "api",
	}
	for target, want := range cases {
		f, ok := r.Lookup([]byte("example.com"), []byte(target), []byte("GET"))
		if assert.True(t, ok, target) {
			assert.Equal(t, want, f.ID, target)
		}
	}
	for _, target := range []string{"/r/12?x", "/r/12#x", "/r/12?/r/x", "http://example.org/r/12?x"} {
		f, ok := r.Lookup([]byte("example.org"), []byte(target), []byte("GET"))
		if assert.True(t, ok, target) {
			assert.Equal(t, "rx", f.ID, target)
		}
	}
	f, ok := r.Lookup([]byte("x.test"), []byte("*"), []byte("OPTIONS"))
	require.True(t, ok, "asterisk-form reaches regex rules")
	assert.Equal(t, "any-ast", f.ID)
}

// Lookup's fallback order is exercised while rules come and go, as
// configuration commands do on a running worker.
func TestAddRemoveAtRunTime(t *testing.T) {
	r := New()
	look := func(host, path, method string) string {
		f, ok := r.Lookup([]byte(host), []byte(path), []byte(method))
		if !ok {
			return ""
		}
		return f.ID
	}
	for _, f := range []Frontend{
		fe("any", HostAny, "", PathPrefix, "/", ""),
		fe("rx", HostRegex, `.*\.example\.com`, PathPrefix, "/", ""),
		fe("wc", HostWildcard, "*.example.com", PathPrefix, "/", ""),
		fe("ex-root", HostExact, "www.example.com", PathPrefix, "/", ""),
		fe("ex-api", HostExact, "www.example.com", PathPrefix, "/api/", ""),
		fe("ex-api-v1", HostExact, "www.example.com", PathPrefix, "/api/v1/", ""),
		fe("ex-api-v1-get", HostExact, "www.example.com", PathPrefix, "/api/v1/", "GET"),
		fe("ex-exact", HostExact, "www.example.com", PathExact, "/api/v1/x", ""),
	} {
		require.NoError(t, r.Add(f))
	}
	const h, p = "www.example.com:443", "/api/v1/x?q=1"
	require.Equal(t, 8, r.Len())
	steps := []struct{ remove, want string }{
		{"", "ex-exact"},
		{"ex-exact", "ex-api-v1-get"},
		{"ex-api-v1-get", "ex-api-v1"},
		{"ex-api-v1", "ex-api"},
		{"ex-api", "ex-root"},
		{"ex-root", "wc"},
		{"wc", "rx"},
		{"rx", "any"},
		{"any", ""},
	}
	for _, s := range steps {
		if s.remove != "" {
			require.NoError(t, r.Remove(s.remove))
		}
		assert.Equal(t, s.want, look(h, p, "GET"), "after removing %q", s.remove)
	}
	assert.Equal(t, 0, r.Len())
	assertEmpty(t, r)

	// Adding back restores the best match at once.
	require.NoError(t, r.Add(fe("any", HostAny, "", PathPrefix, "/", "")))
	assert.Equal(t, "any", look(h, p, "GET"))
	require.NoError(t, r.Add(fe("ex-api", HostExact, "www.example.com", PathPrefix, "/api/", "")))
	assert.Equal(t, "ex-api", look(h, p, "GET"))
	assert.Equal(t, "any", look(h, "/", "GET"))
}

// Removing one rule of a shared path group or regex host keeps the
// others, and a regex host that disappears and comes back is tried last.
func TestRemoveKeepsSiblings(t *testing.T) {
	r := New()
	for _, f := range []Frontend{
		fe("a-get", HostRegex, `a\.test`, PathPrefix, "/", "GET"),
		fe("a-any", HostRegex, `a\.test`, PathPrefix, "/", ""),
		fe("any-a", HostRegex, `.*`, PathPrefix, "/", ""),
		fe("rx-x", HostExact, "x.test", PathRegex, `/x.*`, ""),
		fe("rx-x-put", HostExact, "x.test", PathRegex, `/x.*`, "PUT"),
	} {
		require.NoError(t, r.Add(f))
	}
	get := func(host, path, method string) string {
		f, _ := r.Lookup([]byte(host), []byte(path), []byte(method))
		if f == nil {
			return ""
		}
		return f.ID
	}
	assert.Equal(t, "a-get", get("a.test", "/", "GET"))
	assert.Equal(t, "a-any", get("a.test", "/", "POST"))
	require.NoError(t, r.Remove("a-get"))
	assert.Equal(t, "a-any", get("a.test", "/", "GET"))
	require.NoError(t, r.Remove("a-any"))
	assert.Equal(t, "any-a", get("a.test", "/", "GET"))
	require.NoError(t, r.Add(fe("a-any", HostRegex, `a\.test`, PathPrefix, "/", "")))
	assert.Equal(t, "any-a", get("a.test", "/", "GET"), "re-added regex host comes after the older one")

	assert.Equal(t, "rx-x-put", get("x.test", "/xy", "PUT"))
	require.NoError(t, r.Remove("rx-x"))
	assert.Equal(t, "rx-x-put", get("x.test", "/xy", "PUT"))
	assert.Equal(t, "any-a", get("x.test", "/xy", "GET"))
	require.NoError(t, r.Remove("rx-x-put"))
	assert.Equal(t, "any-a", get("x.test", "/xy", "PUT"))

	for _, id := range []string{"any-a", "a-any"} {
		require.NoError(t, r.Remove(id))
	}
	assertEmpty(t, r)
}

// assertEmpty checks that removals leave no empty groups behind, which
// would otherwise cost every later Lookup a little.
func assertEmpty(t *testing.T, r *Router) {
	t.Helper()
	assert.Empty(t, r.exact)
	assert.Empty(t, r.wildcard)
	assert.Empty(t, r.regex)
	assert.Nil(t, r.any)
	assert.Empty(t, r.byID)
	assert.Empty(t, r.rules)
}
