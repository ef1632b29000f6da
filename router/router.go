package router

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Router holds a worker's frontends and answers which one a request
// belongs to. It is not safe for concurrent mutation: the worker's event
// loop owns it and applies configuration commands between requests.
type Router struct {
	// exact is keyed by the normalised host, so that Lookup finds a host
	// with one map index of its lower-cased bytes.
	exact map[string]*hostRules
	// wildcard is keyed by what follows "*." ("example.com" for
	// "*.example.com"): Lookup drops the request host's first label and
	// indexes with the remainder, a sub-slice of the buffer it already
	// has, instead of building "*."+rest.
	wildcard map[string]*hostRules
	// regex hosts in the order their pattern first appeared.
	regex []*regexHost
	// any is the HostAny rule set; nil when there is none.
	any *hostRules

	byID  map[string]*Frontend
	rules map[ruleKey]string // identical rules, for ErrConflict
}

// ruleKey is what makes two frontends indistinguishable to Lookup.
type ruleKey struct {
	hostKind HostKind
	host     string
	pathKind PathKind
	path     string
	method   string
	match    string // the conditions, spelled out
}

// regexHost groups the rules of every frontend with one host pattern, so
// that the pattern runs once per Lookup however many paths it has.
type regexHost struct {
	pattern string
	re      *regexp.Regexp
	rules   hostRules
}

// hostRules is one host's rules, split by path kind in the order Lookup
// tries them.
type hostRules struct {
	exact  map[string]*pathGroup
	prefix []*pathGroup // longest path first
	regex  []*pathGroup // order of first insertion
	n      int
}

// pathGroup holds the frontends sharing one path (or path pattern): the
// method-specific ones first, then at most one for any method, so that
// the first whose method fits is the right one.
type pathGroup struct {
	path   string
	re     *regexp.Regexp // PathRegex only
	fronts []*Frontend
}

// New returns an empty router.
func New() *Router {
	return &Router{
		exact:    make(map[string]*hostRules),
		wildcard: make(map[string]*hostRules),
		byID:     make(map[string]*Frontend),
		rules:    make(map[ruleKey]string),
	}
}

// Len returns the number of frontends.
func (r *Router) Len() int { return len(r.byID) }

// Get returns the stored (normalised) frontend with that ID, so that a
// command handler can show or diff what is being served.
func (r *Router) Get(id string) (*Frontend, bool) {
	f, ok := r.byID[id]
	return f, ok
}

// Add validates f and adds it. The checks run before anything changes,
// so a failed Add leaves the router as it was. A frontend that only
// differs from an existing one by its ID is refused with ErrConflict
// rather than shadowed, because one of the two could never match.
func (r *Router) Add(f Frontend) error {
	c, err := normalize(f)
	if err != nil {
		return err
	}
	n := new(Frontend)
	*n = c.f
	if _, ok := r.byID[n.ID]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, n.ID)
	}
	key := keyOf(n)
	if other, ok := r.rules[key]; ok {
		return fmt.Errorf("%w: %q has the same host, path and method as %q", ErrConflict, n.ID, other)
	}

	var h *hostRules
	switch n.HostKind {
	case HostExact:
		h = r.exact[n.Host]
		if h == nil {
			h = new(hostRules)
			r.exact[n.Host] = h
		}
	case HostWildcard:
		h = r.wildcard[n.Host[2:]]
		if h == nil {
			h = new(hostRules)
			r.wildcard[n.Host[2:]] = h
		}
	case HostRegex:
		i := r.regexIndex(n.Host)
		if i < 0 {
			r.regex = append(r.regex, &regexHost{pattern: n.Host, re: c.hostRe})
			i = len(r.regex) - 1
		}
		h = &r.regex[i].rules
	case HostAny:
		if r.any == nil {
			r.any = new(hostRules)
		}
		h = r.any
	}
	h.add(n, c.pathRe)
	r.byID[n.ID] = n
	r.rules[key] = n.ID
	return nil
}

// Remove removes the frontend with that ID. Requests it matched go to
// the next best rule from the next Lookup on. The removed Frontend itself
// is left untouched (stored frontends are never modified), so a session
// still holding it from an earlier Lookup finishes its request with a
// consistent, if outdated, rule.
func (r *Router) Remove(id string) error {
	f, ok := r.byID[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	delete(r.byID, id)
	delete(r.rules, keyOf(f))
	switch f.HostKind {
	case HostExact:
		if h := r.exact[f.Host]; h.remove(f) {
			delete(r.exact, f.Host)
		}
	case HostWildcard:
		if h := r.wildcard[f.Host[2:]]; h.remove(f) {
			delete(r.wildcard, f.Host[2:])
		}
	case HostRegex:
		i := r.regexIndex(f.Host)
		if r.regex[i].rules.remove(f) {
			r.regex = slices.Delete(r.regex, i, i+1)
		}
	case HostAny:
		if r.any.remove(f) {
			r.any = nil
		}
	}
	return nil
}

// Replace puts f in place of the frontend with f.ID, in one step: no
// lookup sees neither. f may match what the old one matched (a route
// sent to another cluster). Without a frontend f.ID it adds f. On error
// the router is unchanged.
func (r *Router) Replace(f Frontend) error {
	old, ok := r.byID[f.ID]
	if !ok {
		return r.Add(f)
	}
	if _, err := normalize(f); err != nil {
		return err
	}
	prev := *old
	if err := r.Remove(f.ID); err != nil {
		return err
	}
	if err := r.Add(f); err != nil {
		if err2 := r.Add(prev); err2 != nil {
			return errors.Join(err, err2)
		}
		return err
	}
	return nil
}

// Lookup returns the frontend for a request, following the precedence
// described in the package documentation. host is the Host header (or
// :authority) as received, port and all; target is the request target,
// whose query is ignored; method is compared case-sensitively.
//
// Lookup does not allocate unless it has to run a regexp. It retains
// none of its arguments, but a regex host or path is matched against
// sub-slices of host and target directly, so those escape to the heap in
// the compiler's eyes: pass slices of a buffer that already lives there.
func (r *Router) Lookup(host, target, method []byte) (*Frontend, bool) {
	return r.LookupRequest(host, target, method, nil)
}

// Fields gives a request's fields to [Router.LookupRequest]: the first
// value of the field named name (case-insensitive). An *http1.Editor is
// one.
type Fields interface {
	Get(name string) ([]byte, bool)
}

// LookupRequest is Lookup for frontends with conditions ([Match]) on the
// request's fields (from fields; nil fails every field condition) and
// its query parameters (from target).
func (r *Router) LookupRequest(host, target, method []byte, fields Fields) (*Frontend, bool) {
	q := request{target: target, fields: fields}
	hv := hostView(host)
	path := pathOf(target)

	if n := len(hv); n <= maxHost && (len(r.exact) > 0 || len(r.wildcard) > 0) {
		var buf [maxHost]byte
		lh := buf[:n]
		lower(lh, hv)
		if h := r.exact[string(lh)]; h != nil {
			if f := h.match(path, method, &q); f != nil {
				return f, true
			}
		}
		if len(r.wildcard) > 0 {
			// The first label must be non-empty and leave a non-empty
			// remainder: ".example.com" has no label to stand for "*".
			if i := bytes.IndexByte(lh, '.'); i > 0 && i < n-1 {
				if h := r.wildcard[string(lh[i+1:])]; h != nil {
					if f := h.match(path, method, &q); f != nil {
						return f, true
					}
				}
			}
		}
	}
	for _, rh := range r.regex {
		// The pattern was compiled case-insensitive, so the raw bytes
		// can be matched without the lower-cased copy.
		if rh.re.Match(hv) {
			if f := rh.rules.match(path, method, &q); f != nil {
				return f, true
			}
		}
	}
	if r.any != nil {
		if f := r.any.match(path, method, &q); f != nil {
			return f, true
		}
	}
	return nil, false
}

func (r *Router) regexIndex(pattern string) int {
	return slices.IndexFunc(r.regex, func(rh *regexHost) bool { return rh.pattern == pattern })
}

func keyOf(f *Frontend) ruleKey {
	var m strings.Builder
	for _, c := range f.Match {
		fmt.Fprintf(&m, "%q %q %d %q;", strings.ToLower(c.Field), c.Query, c.Kind, c.Value)
	}
	return ruleKey{f.HostKind, f.Host, f.PathKind, f.Path, f.Method, m.String()}
}

// before reports whether a must be tried before b among the frontends of
// one path: a specific method first, then more conditions.
func before(a, b *Frontend) bool {
	if (a.Method != "") != (b.Method != "") {
		return a.Method != ""
	}
	return len(a.Match) > len(b.Match)
}

// add files f under its path group, creating the group where Lookup's
// order wants it.
func (h *hostRules) add(f *Frontend, re *regexp.Regexp) {
	var g *pathGroup
	switch f.PathKind {
	case PathExact:
		g = h.exact[f.Path]
		if g == nil {
			if h.exact == nil {
				h.exact = make(map[string]*pathGroup)
			}
			g = &pathGroup{path: f.Path}
			h.exact[f.Path] = g
		}
	case PathPrefix:
		i := slices.IndexFunc(h.prefix, func(g *pathGroup) bool { return g.path == f.Path })
		if i >= 0 {
			g = h.prefix[i]
		} else {
			// Longest first; among equal lengths at most one can match a
			// given path, so their relative order does not matter.
			at := slices.IndexFunc(h.prefix, func(g *pathGroup) bool { return len(g.path) < len(f.Path) })
			if at < 0 {
				at = len(h.prefix)
			}
			g = &pathGroup{path: f.Path}
			h.prefix = slices.Insert(h.prefix, at, g)
		}
	case PathRegex:
		i := slices.IndexFunc(h.regex, func(g *pathGroup) bool { return g.path == f.Path })
		if i >= 0 {
			g = h.regex[i]
		} else {
			g = &pathGroup{path: f.Path, re: re}
			h.regex = append(h.regex, g)
		}
	}
	at := slices.IndexFunc(g.fronts, func(o *Frontend) bool { return before(f, o) })
	if at < 0 {
		at = len(g.fronts)
	}
	g.fronts = slices.Insert(g.fronts, at, f)
	h.n++
}

// remove takes f out of its group, drops the group if it empties, and
// reports whether the host has no rules left.
func (h *hostRules) remove(f *Frontend) (empty bool) {
	drop := func(g *pathGroup) bool {
		g.fronts = slices.DeleteFunc(g.fronts, func(o *Frontend) bool { return o == f })
		return len(g.fronts) == 0
	}
	switch f.PathKind {
	case PathExact:
		if drop(h.exact[f.Path]) {
			delete(h.exact, f.Path)
		}
	case PathPrefix:
		h.prefix = slices.DeleteFunc(h.prefix, func(g *pathGroup) bool { return g.path == f.Path && drop(g) })
	case PathRegex:
		h.regex = slices.DeleteFunc(h.regex, func(g *pathGroup) bool { return g.path == f.Path && drop(g) })
	}
	h.n--
	return h.n == 0
}

// match returns the host's best rule for path and method, or nil so that
// Lookup falls through to the next host class.
func (h *hostRules) match(path, method []byte, q *request) *Frontend {
	if len(h.exact) > 0 {
		if g := h.exact[string(path)]; g != nil {
			if f := g.match(method, q); f != nil {
				return f
			}
		}
	}
	for _, g := range h.prefix {
		// Not bytes.HasPrefix: converting g.path to []byte could allocate
		// for long prefixes, the string comparison never does.
		if len(path) >= len(g.path) && string(path[:len(g.path)]) == g.path {
			if f := g.match(method, q); f != nil {
				return f
			}
		}
	}
	for _, g := range h.regex {
		if g.re.Match(path) {
			if f := g.match(method, q); f != nil {
				return f
			}
		}
	}
	return nil
}

// match returns the group's first frontend that accepts method; the
// order of fronts puts method-specific rules ahead of the catch-all.
func (g *pathGroup) match(method []byte, q *request) *Frontend {
	for _, f := range g.fronts {
		if (f.Method == "" || f.Method == string(method)) && q.holds(f.Match) {
			return f
		}
	}
	return nil
}
