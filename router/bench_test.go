package router

import (
	"fmt"
	"testing"
)

// benchPaths are the five prefixes every benchmark host gets; the
// request paths below hit each of them, the longest first.
var benchPaths = []string{"/", "/api/", "/api/v1/", "/static/", "/admin/"}

var benchTargets = [][]byte{
	[]byte("/api/v1/users/42?expand=true"),
	[]byte("/static/css/site.css"),
	[]byte("/index.html"),
	[]byte("/admin/login"),
	[]byte("/api/health"),
}

func benchLookup(b *testing.B, r *Router, hosts [][]byte) {
	b.Helper()
	method := []byte("GET")
	for i, h := range hosts { // every request the benchmark makes must route
		if _, ok := r.Lookup(h, benchTargets[i%len(benchTargets)], method); !ok {
			b.Fatalf("no route for %s", h)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r.Lookup(hosts[i%len(hosts)], benchTargets[i%len(benchTargets)], method)
	}
}

// BenchmarkLookupExact: 100 exact hosts with 5 prefix paths each.
func BenchmarkLookupExact(b *testing.B) {
	r := New()
	var hosts [][]byte
	for h := range 100 {
		host := fmt.Sprintf("site%d.example.com", h)
		for p, path := range benchPaths {
			if err := r.Add(fe(fmt.Sprintf("%d-%d", h, p), HostExact, host, PathPrefix, path, "")); err != nil {
				b.Fatal(err)
			}
		}
		hosts = append(hosts, []byte(fmt.Sprintf("Site%d.example.com:443", h)))
	}
	benchLookup(b, r, hosts[:97]) // 97: coprime with the 5 targets
}

// BenchmarkLookupWildcard: 100 wildcard domains with 5 prefix paths
// each, plus the exact hosts a wildcard request misses first.
func BenchmarkLookupWildcard(b *testing.B) {
	r := New()
	var hosts [][]byte
	for h := range 100 {
		for p, path := range benchPaths {
			if err := r.Add(fe(fmt.Sprintf("w%d-%d", h, p), HostWildcard, fmt.Sprintf("*.tenant%d.example.com", h), PathPrefix, path, "")); err != nil {
				b.Fatal(err)
			}
			if err := r.Add(fe(fmt.Sprintf("e%d-%d", h, p), HostExact, fmt.Sprintf("www.site%d.example.com", h), PathPrefix, path, "")); err != nil {
				b.Fatal(err)
			}
		}
		hosts = append(hosts, []byte(fmt.Sprintf("app%d.tenant%d.example.com", h%7, h)))
	}
	benchLookup(b, r, hosts[:97])
}

// BenchmarkLookupRegex: 10 regex hosts with 5 prefix paths each; the
// requests match the later patterns too, so several regexps run per
// lookup on average.
func BenchmarkLookupRegex(b *testing.B) {
	r := New()
	var hosts [][]byte
	for h := range 10 {
		for p, path := range benchPaths {
			if err := r.Add(fe(fmt.Sprintf("r%d-%d", h, p), HostRegex, fmt.Sprintf(`node[0-9]+\.dc%d\.example\.com`, h), PathPrefix, path, "")); err != nil {
				b.Fatal(err)
			}
		}
		hosts = append(hosts, []byte(fmt.Sprintf("node%d.dc%d.example.com:8080", h*13, h)))
	}
	benchLookup(b, r, hosts)
}

// BenchmarkLookupRegexPath: one exact host whose paths are regexps, the
// other regex cost.
func BenchmarkLookupRegexPath(b *testing.B) {
	r := New()
	for p, pattern := range []string{`/api/v[0-9]+/users/[0-9]+`, `/static/.*\.css`, `/index\.html`, `/admin/.*`, `/api/.*`} {
		if err := r.Add(fe(fmt.Sprint("p", p), HostExact, "example.com", PathRegex, pattern, "")); err != nil {
			b.Fatal(err)
		}
	}
	benchLookup(b, r, [][]byte{[]byte("example.com")})
}
