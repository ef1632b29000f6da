// Package filter is a set of ready-made HTTP hooks for
// [httpproxy.Hooks]: authentication, rewrites and rate limits. Each is
// built only on the public hook API, and each returns an
// [httpproxy.Hooks] to put in a listener's Config.Hooks or a route's
// [httpproxy.Listener.SetRouteHooks], in the order they should run:
//
//	cfg.Hooks = []httpproxy.Hooks{
//		filter.RateLimit(filter.Limit{PerSecond: 20, Burst: 40}),
//		filter.When(filter.Not(filter.PathPrefix("/public/")), filter.Bearer("api", validToken)),
//		filter.StripPrefix("/api"),
//	}
package filter

import (
	"crypto/subtle"
	"encoding/base64"
	"regexp"
	"strings"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// Cond decides whether a hook applies to a request.
type Cond func(r *httpproxy.Request) bool

// PathPrefix holds for requests whose path starts with prefix.
func PathPrefix(prefix string) Cond {
	return func(r *httpproxy.Request) bool { return strings.HasPrefix(r.Path(), prefix) }
}

// Not inverts c.
func Not(c Cond) Cond { return func(r *httpproxy.Request) bool { return !c(r) } }

// When runs the Request and Upstream hooks of h only for the requests c
// holds for; its Response and Done hooks run for every request.
func When(c Cond, h httpproxy.Hooks) httpproxy.Hooks {
	out := h
	if f := h.Request; f != nil {
		out.Request = func(r *httpproxy.Request) {
			if c(r) {
				f(r)
			}
		}
	}
	if f := h.Upstream; f != nil {
		out.Upstream = func(r *httpproxy.Request) {
			if c(r) {
				f(r)
			}
		}
	}
	return out
}

// Bearer answers 401 with WWW-Authenticate: Bearer unless the request
// carries "Authorization: Bearer <token>" with a token valid accepts.
// valid runs on the loop: it must not block (keep tokens in memory, or
// write a hook that suspends the request while it asks a service).
func Bearer(realm string, valid func(token string) bool) httpproxy.Hooks {
	challenge := httpproxy.Field{Name: "WWW-Authenticate", Value: `Bearer realm="` + realm + `"`}
	return httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		v, _ := r.Field("Authorization")
		scheme, token, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || !valid(strings.TrimSpace(token)) {
			r.Respond(401, "401 Unauthorized\n", challenge)
		}
	}}
}

// BasicAuth answers 401 with WWW-Authenticate: Basic unless the request
// carries credentials valid accepts (RFC 7617). Use [Equal] to compare
// secrets in constant time.
func BasicAuth(realm string, valid func(user, password string) bool) httpproxy.Hooks {
	challenge := httpproxy.Field{Name: "WWW-Authenticate", Value: `Basic realm="` + realm + `", charset="UTF-8"`}
	return httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		v, _ := r.Field("Authorization")
		scheme, enc, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Basic") {
			if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc)); err == nil {
				if user, pass, ok := strings.Cut(string(raw), ":"); ok && valid(user, pass) {
					return
				}
			}
		}
		r.Respond(401, "401 Unauthorized\n", challenge)
	}}
}

// Equal compares two secrets in time that does not depend on where they
// differ.
func Equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// StripPrefix removes prefix from the path of the requests that have it
// ("/api/users" becomes "/users"; "/api" becomes "/"), keeping the
// query.
func StripPrefix(prefix string) httpproxy.Hooks {
	return httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		p := r.Path()
		if !strings.HasPrefix(p, prefix) {
			return
		}
		p = p[len(prefix):]
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		r.SetPath(p)
	}}
}

// RewritePath replaces the matches of re in the path with repl, which
// may refer to submatches ($1) as in [regexp.Regexp.ReplaceAllString].
func RewritePath(re *regexp.Regexp, repl string) httpproxy.Hooks {
	return httpproxy.Hooks{Request: func(r *httpproxy.Request) {
		p := r.Path()
		if q := re.ReplaceAllString(p, repl); q != p {
			r.SetPath(q)
		}
	}}
}

// SetHost replaces the Host field of the requests (the backend's
// virtual host). In a listener's hooks it runs before routing, so the
// request is routed by the new host too.
func SetHost(host string) httpproxy.Hooks {
	return httpproxy.Hooks{Request: func(r *httpproxy.Request) { r.SetHost(host) }}
}
