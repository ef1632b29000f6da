package router

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Errors returned by Add and Remove; Add wraps them with details, so
// compare with errors.Is.
var (
	// ErrInvalid: the frontend cannot be routed as written.
	ErrInvalid = errors.New("router: invalid frontend")
	// ErrDuplicate: a frontend with that ID is already present.
	ErrDuplicate = errors.New("router: duplicate frontend id")
	// ErrConflict: another frontend already has the same host, path and
	// method, so one of the two could never match.
	ErrConflict = errors.New("router: conflicting frontend")
	// ErrNotFound: no frontend has that ID.
	ErrNotFound = errors.New("router: frontend not found")
)

// maxHost bounds exact and wildcard hosts, and so the stack buffer Lookup
// lower-cases into. DNS names are at most 253 bytes; 255 leaves room for
// a zone-qualified IPv6 literal.
const maxHost = 255

// compiled is a normalised frontend with the regexps Add compiled while
// validating it, so that each pattern is compiled once.
type compiled struct {
	f      Frontend
	hostRe *regexp.Regexp
	pathRe *regexp.Regexp
}

// normalize validates f and returns the copy to store. The copy owns its
// slices: a caller reusing its Frontend value after Add must not change
// what the router serves.
func normalize(f Frontend) (compiled, error) {
	c := compiled{f: f}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalid, f.ID, fmt.Sprintf(format, args...))
	}
	if f.ID == "" {
		return c, bad("empty id")
	}

	switch f.HostKind {
	case HostExact:
		h, err := normalizeExactHost(f.Host)
		if err != nil {
			return c, bad("host %q: %v", f.Host, err)
		}
		c.f.Host = h
	case HostWildcard:
		rest, ok := strings.CutPrefix(f.Host, "*.")
		if !ok {
			return c, bad("wildcard host %q must have the form *.example.com", f.Host)
		}
		h, err := normalizeName(rest)
		if err != nil {
			return c, bad("wildcard host %q: %v", f.Host, err)
		}
		if !strings.Contains(h, ".") {
			return c, bad("wildcard host %q must have the form *.example.com", f.Host)
		}
		c.f.Host = "*." + h
	case HostRegex:
		if f.Host == "" {
			return c, bad("empty host regex (use HostAny)")
		}
		re, err := regexp.Compile(`^(?i:` + f.Host + `)$`)
		if err != nil {
			return c, bad("host regex: %v", err)
		}
		c.hostRe = re
	case HostAny:
		if f.Host != "" {
			return c, bad("HostAny with host %q", f.Host)
		}
	default:
		return c, bad("unknown host kind %v", f.HostKind)
	}

	switch f.PathKind {
	case PathPrefix, PathExact:
		if c.f.Path == "" {
			c.f.Path = "/"
		}
		if c.f.Path[0] != '/' {
			return c, bad("path %q does not start with /", f.Path)
		}
		if i := strings.IndexAny(c.f.Path, "?#"); i >= 0 {
			return c, bad("path %q contains %q, which Lookup never sees", f.Path, c.f.Path[i])
		}
		if hasCtlOrSpace(c.f.Path) {
			return c, bad("path %q contains blanks or control characters", f.Path)
		}
	case PathRegex:
		if f.Path == "" {
			return c, bad("empty path regex")
		}
		re, err := regexp.Compile(`^(?:` + f.Path + `)$`)
		if err != nil {
			return c, bad("path regex: %v", err)
		}
		c.pathRe = re
	default:
		return c, bad("unknown path kind %v", f.PathKind)
	}

	if f.Method != "" && !isToken(f.Method) {
		return c, bad("method %q is not a token", f.Method)
	}

	a := &c.f.Action
	switch a.Kind {
	case Forward:
		if a.Cluster == "" {
			return c, bad("forward without a cluster")
		}
	case Deny:
	case Redirect:
		switch a.Status {
		case 0:
			a.Status = 301
		case 301, 302, 307, 308:
		default:
			return c, bad("redirect status %d (want 301, 302, 307 or 308)", a.Status)
		}
		switch {
		case (a.RedirectScheme == "") == (a.RedirectTo == ""):
			return c, bad("redirect needs exactly one of RedirectScheme and RedirectTo")
		case a.RedirectScheme != "":
			a.RedirectScheme = strings.ToLower(a.RedirectScheme)
			if a.RedirectScheme != "http" && a.RedirectScheme != "https" {
				return c, bad("redirect scheme %q (want http or https)", a.RedirectScheme)
			}
			if a.RedirectExact {
				return c, bad("RedirectExact needs RedirectTo")
			}
		default:
			if hasCtlOrSpace(a.RedirectTo) {
				return c, bad("redirect location %q contains blanks or control characters", a.RedirectTo)
			}
		}
	default:
		return c, bad("unknown action kind %v", a.Kind)
	}

	for _, h := range slices.Concat(f.AddRequestHeaders, f.AddResponseHeaders) {
		if !isToken(h.Name) {
			return c, bad("header name %q is not a token", h.Name)
		}
		if !isFieldValue(h.Value) {
			return c, bad("header %s: value contains CR, LF or NUL", h.Name)
		}
	}
	for _, n := range slices.Concat(f.RemoveRequestHeaders, f.RemoveResponseHeaders) {
		if !isToken(n) {
			return c, bad("header name %q is not a token", n)
		}
	}
	if !isFieldValue(f.HSTS) {
		return c, bad("HSTS value contains CR, LF or NUL")
	}
	c.f.Match = slices.Clone(f.Match)
	for i := range c.f.Match {
		m := &c.f.Match[i]
		switch {
		case (m.Field == "") == (m.Query == ""):
			return c, bad("match %d: set exactly one of Field and Query", i)
		case m.Field != "" && !isToken(m.Field):
			return c, bad("match %d: field name %q is not a token", i, m.Field)
		}
		switch m.Kind {
		case Exists:
		case Equals:
			if !isFieldValue(m.Value) {
				return c, bad("match %d: value contains CR, LF or NUL", i)
			}
		case Regex:
			re, err := regexp.Compile(m.Value)
			if err != nil {
				return c, bad("match %d: %v", i, err)
			}
			m.re = re
		default:
			return c, bad("match %d: unknown kind %d", i, m.Kind)
		}
	}
	c.f.AddRequestHeaders = slices.Clone(f.AddRequestHeaders)
	c.f.RemoveRequestHeaders = slices.Clone(f.RemoveRequestHeaders)
	c.f.AddResponseHeaders = slices.Clone(f.AddResponseHeaders)
	c.f.RemoveResponseHeaders = slices.Clone(f.RemoveResponseHeaders)
	return c, nil
}

// normalizeExactHost returns the key an exact host is stored under: the
// same form hostView and lower produce from a request's Host header, so
// that Lookup can index the map without further work.
func normalizeExactHost(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty host (use HostAny)")
	}
	ip := ""
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", errors.New("unterminated [")
		}
		if end != len(s)-1 {
			return "", errors.New("a port is not allowed: frontends match host names, not listeners")
		}
		ip = s[1:end]
	case strings.Count(s, ":") > 1:
		ip = s
	case strings.Contains(s, ":"):
		return "", errors.New("a port is not allowed: frontends match host names, not listeners")
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is6() {
			return "", fmt.Errorf("%q is not an IPv6 address", ip)
		}
		if len(ip) > maxHost {
			return "", errors.New("too long")
		}
		return strings.ToLower(ip), nil
	}
	return normalizeName(s)
}

// normalizeName lower-cases a host name (or IPv4 literal), drops one
// trailing dot and checks its labels. It insists on ASCII: international
// names arrive in Host headers as punycode, and a rule written in Unicode
// would silently never match.
func normalizeName(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("empty name")
	}
	if len(s) > maxHost {
		return "", errors.New("too long")
	}
	if strings.Contains(s, ":") {
		return "", errors.New("a port is not allowed: frontends match host names, not listeners")
	}
	s = strings.ToLower(s)
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return "", errors.New("empty label")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return "", errors.New("'*' is only allowed as the first label of a HostWildcard")
				}
				return "", fmt.Errorf("invalid character %q (non-ASCII names must be punycode)", c)
			}
		}
	}
	return s, nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of methods
// and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isFieldValue reports whether s can be written as a header value without
// ending the line early.
func isFieldValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}

// hasCtlOrSpace reports bytes that cannot appear in a request target or a
// Location, and so could never match or would corrupt the answer.
func hasCtlOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
