package router

import (
	"bytes"
	"net/url"
)

// hostView returns the host part of a Host header as a sub-slice of it:
// blanks trimmed, port removed, IPv6 brackets removed, one trailing dot
// removed. Case is left alone; the caller lower-cases into its own buffer
// only when it needs a map key.
func hostView(b []byte) []byte {
	b = bytes.Trim(b, " \t")
	if len(b) > 0 && b[0] == '[' {
		if end := bytes.IndexByte(b, ']'); end > 0 {
			return b[1:end]
		}
		return b // malformed: let it match nothing but regex or any
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		// One colon: name:port. Several: an unbracketed IPv6 literal,
		// which has no port to strip.
		b = b[:i]
	}
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	return b
}

// lower writes the ASCII lower-case of src into dst (same length). Host
// names are ASCII on the wire, so Unicode folding would be wasted work.
func lower(dst, src []byte) {
	for i, c := range src {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
}

// pathOf returns the path of a request target as a sub-slice of it: the
// query and fragment cut off, an absolute-form target reduced to its
// path, an empty path read as "/". Asterisk-form ("*") is returned as is.
func pathOf(t []byte) []byte {
	for i, c := range t {
		if c == '?' || c == '#' { // a plain loop: IndexAny builds a set per call
			t = t[:i]
			break
		}
	}
	if len(t) > 0 && t[0] != '/' && t[0] != '*' {
		// Absolute form: scheme "://" authority path.
		if i := bytes.Index(t, []byte("://")); i >= 0 {
			rest := t[i+3:]
			if j := bytes.IndexByte(rest, '/'); j >= 0 {
				return rest[j:]
			}
			return slash
		}
	}
	if len(t) == 0 {
		return slash
	}
	return t
}

var slash = []byte("/")

// AppendLocation appends to dst the Location a Redirect action sends for
// a request with that Host header and target, so that the session builds
// the answer in its own buffer without allocating. The query is kept; a
// scheme redirect keeps the host but drops its port, since the port of
// the plain-HTTP listener is wrong for the new scheme. A target that is
// not origin-form redirects to "/".
func (a *Action) AppendLocation(dst, host, target []byte) []byte {
	if len(target) == 0 || target[0] != '/' {
		target = slash
	}
	if a.RedirectTo != "" {
		dst = append(dst, a.RedirectTo...)
		if a.RedirectExact {
			return dst
		}
		if len(a.RedirectTo) > 0 && a.RedirectTo[len(a.RedirectTo)-1] == '/' {
			target = target[1:]
		}
		return append(dst, target...)
	}
	dst = append(dst, a.RedirectScheme...)
	dst = append(dst, "://"...)
	dst = append(dst, hostWithoutPort(host)...)
	return append(dst, target...)
}

// hostWithoutPort is hostView for building URLs: brackets and trailing
// dot are kept, only blanks and the port go.
func hostWithoutPort(b []byte) []byte {
	b = bytes.Trim(b, " \t")
	if len(b) > 0 && b[0] == '[' {
		if end := bytes.IndexByte(b, ']'); end > 0 {
			return b[:end+1]
		}
		return b
	}
	if i := bytes.IndexByte(b, ':'); i >= 0 && bytes.IndexByte(b[i+1:], ':') < 0 {
		return b[:i]
	}
	return b
}

// request is what a Lookup's conditions look at.
type request struct {
	target []byte
	fields Fields
}

// holds reports whether every condition holds for the request.
func (q *request) holds(ms []Match) bool {
	for i := range ms {
		m := &ms[i]
		var v []byte
		var ok bool
		if m.Field != "" {
			if q.fields != nil {
				v, ok = q.fields.Get(m.Field)
			}
		} else {
			v, ok = queryParam(q.target, m.Query)
		}
		if !ok {
			return false
		}
		switch m.Kind {
		case Equals:
			if string(v) != m.Value {
				return false
			}
		case Regex:
			if !m.re.Match(v) {
				return false
			}
		}
	}
	return true
}

// queryParam is the first value of query parameter name in target,
// unescaped (RFC 3986 percent-encoding, '+' for a space as HTML forms
// send it). It allocates only for escaped names or values.
func queryParam(target []byte, name string) ([]byte, bool) {
	i := bytes.IndexByte(target, '?')
	if i < 0 {
		return nil, false
	}
	q := target[i+1:]
	if j := bytes.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for len(q) > 0 {
		var kv []byte
		if j := bytes.IndexByte(q, '&'); j >= 0 {
			kv, q = q[:j], q[j+1:]
		} else {
			kv, q = q, nil
		}
		k, v := kv, []byte(nil)
		if j := bytes.IndexByte(kv, '='); j >= 0 {
			k, v = kv[:j], kv[j+1:]
		}
		if !equalUnescaped(k, name) {
			continue
		}
		return unescape(v), true
	}
	return nil, false
}

func needsUnescape(b []byte) bool {
	return bytes.IndexByte(b, '%') >= 0 || bytes.IndexByte(b, '+') >= 0
}

func equalUnescaped(k []byte, name string) bool {
	if !needsUnescape(k) {
		return string(k) == name
	}
	u, err := url.QueryUnescape(string(k))
	return err == nil && u == name
}

func unescape(v []byte) []byte {
	if !needsUnescape(v) {
		return v
	}
	u, err := url.QueryUnescape(string(v))
	if err != nil {
		return v
	}
	return []byte(u)
}
