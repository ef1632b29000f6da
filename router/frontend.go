package router

import (
	"regexp"
	"strconv"
)

// ActionKind says what a matched frontend does with the request.
type ActionKind uint8

const (
	// Forward sends the request to a backend of Action.Cluster. It is the
	// zero value so that a frontend written with only a cluster forwards.
	Forward ActionKind = iota
	// Deny answers 401 without contacting any backend.
	Deny
	// Redirect answers with a redirection whose Location is built from
	// the request (see [Action.AppendLocation]).
	Redirect
)

// String returns the kind's name, for logs and errors.
func (k ActionKind) String() string {
	switch k {
	case Forward:
		return "forward"
	case Deny:
		return "deny"
	case Redirect:
		return "redirect"
	}
	return "ActionKind(" + strconv.Itoa(int(k)) + ")"
}

// Action is what a frontend does with the requests it matches.
type Action struct {
	Kind ActionKind
	// Cluster names the cluster a Forward action sends to.
	Cluster string
	// Status is a Redirect's status code: 301, 302, 307 or 308. Add
	// stores 301 when it is 0. 307 and 308 keep the method and body,
	// which matters when redirecting a POST.
	Status int
	// RedirectScheme, for a Redirect, sends the client to the same host
	// and target under this scheme ("https" for the usual HTTP to HTTPS
	// upgrade). Exactly one of RedirectScheme and RedirectTo is set.
	RedirectScheme string
	// RedirectTo, for a Redirect, is a fixed Location prefix such as
	// "https://example.com"; the request's path and query are appended
	// unless RedirectExact is set.
	RedirectTo string
	// RedirectExact makes RedirectTo the whole Location, for sending
	// every request to one page.
	RedirectExact bool
}

// HostKind says how Frontend.Host is compared with the request's host.
type HostKind uint8

const (
	// HostExact matches one host name or IP literal.
	HostExact HostKind = iota
	// HostWildcard matches "*.example.com": one extra label, no more, no
	// less.
	HostWildcard
	// HostRegex matches an anchored, case-insensitive regular expression
	// against the whole host (port and trailing dot removed).
	HostRegex
	// HostAny matches every host; Frontend.Host must be empty.
	HostAny
)

// String returns the kind's name, for logs and errors.
func (k HostKind) String() string {
	switch k {
	case HostExact:
		return "exact"
	case HostWildcard:
		return "wildcard"
	case HostRegex:
		return "regex"
	case HostAny:
		return "any"
	}
	return "HostKind(" + strconv.Itoa(int(k)) + ")"
}

// PathKind says how Frontend.Path is compared with the request's path.
type PathKind uint8

const (
	// PathPrefix matches paths that start with Frontend.Path; the longest
	// matching prefix wins. It is the zero value, so that a frontend
	// without a path routes everything under "/".
	PathPrefix PathKind = iota
	// PathExact matches only Frontend.Path itself.
	PathExact
	// PathRegex matches an anchored regular expression against the whole
	// path (query excluded).
	PathRegex
)

// String returns the kind's name, for logs and errors.
func (k PathKind) String() string {
	switch k {
	case PathPrefix:
		return "prefix"
	case PathExact:
		return "exact"
	case PathRegex:
		return "regex"
	}
	return "PathKind(" + strconv.Itoa(int(k)) + ")"
}

// Header is one header field to add to a request or response.
type Header struct{ Name, Value string }

// MatchKind is how a [Match] tests its field or query parameter.
type MatchKind uint8

const (
	// Exists: the field or parameter is present (any value).
	Exists MatchKind = iota
	// Equals: its value is Value (case-sensitive; a query parameter's
	// value is compared unescaped).
	Equals
	// Regex: its value matches the regular expression Value (RE2,
	// unanchored: use ^ and $ to anchor).
	Regex
)

var matchKindNames = [...]string{"exists", "equals", "regex"}

func (k MatchKind) String() string {
	if int(k) < len(matchKindNames) {
		return matchKindNames[k]
	}
	return "MatchKind(?)"
}

// Match is one condition of a [Frontend] on a request field (Field, its
// name, case-insensitive) or a query parameter (Query, its name): set
// exactly one. A field or parameter that appears several times is tested
// by its first value.
type Match struct {
	Field string
	Query string
	Kind  MatchKind
	Value string
	re    *regexp.Regexp
}

// Frontend is one routing rule and what to do with the requests it
// matches. Add stores a normalised copy; Lookup returns a pointer to that
// copy, which callers must treat as read-only.
type Frontend struct {
	// ID names the frontend so that commands can remove it; it is unique
	// within a router.
	ID string
	// Host is interpreted according to HostKind. Exact hosts and
	// wildcards are stored lower-cased, without a trailing dot and, for
	// IPv6 literals, without brackets; a port is an error, since the
	// router matches on names, not listeners. A regex is stored as given
	// and compiled case-insensitively instead, because lower-casing a
	// pattern would change escapes such as \D or \S.
	Host     string
	HostKind HostKind
	// Path is interpreted according to PathKind; it defaults to "/", so
	// that a frontend without a path covers its whole host.
	Path     string
	PathKind PathKind
	// Method restricts the frontend to one request method. Methods are
	// case-sensitive (RFC 9110), so "get" does not match GET. Empty
	// matches any method.
	Method string
	// Match lists conditions on the request's fields and query
	// parameters that must all hold. Among frontends of one host, path
	// and method, those with more conditions are tried first.
	Match  []Match
	Action Action

	// Header edits the HTTP session applies to requests forwarded for
	// this frontend and to their responses. Add checks the names are
	// tokens and the values contain no CR, LF or NUL, so that a
	// configuration cannot smuggle extra header lines.
	AddRequestHeaders     []Header
	RemoveRequestHeaders  []string
	AddResponseHeaders    []Header
	RemoveResponseHeaders []string
	// HSTS, if set, is the Strict-Transport-Security value to add to
	// responses sent over HTTPS.
	HSTS string
}
