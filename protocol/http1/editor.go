package http1

// Editor rewrites a parsed head without re-serialising what it does not
// change: [Editor.Segments] returns the edited head as slices of the
// original head, which it aliases, and of a small scratch buffer for the
// new bytes, ready for writev. An Editor is reusable; after warm-up it
// allocates nothing.
//
// Edits refer to fields by their index in Head.Fields. Added fields go
// after the last field. The output starts at the start line (empty lines
// before a request line are dropped) and ends with the final CRLF.
type Editor struct {
	head    []byte
	h       *Head
	ops     []edit
	scratch []byte // replaced values and target
	adds    []byte // added field lines, contiguous
	target  [2]int // scratch range of the new request-target or status line
	retgt   bool
	rever   bool // the version is a higher 1.x minor: it goes out as HTTP/1.1
	restat  bool // target holds a new status line (responses)
}

type edit struct {
	removed  bool
	replaced bool
	vs, ve   int // scratch range of the new value
}

// Reset starts editing head = b[:h.Len], as parsed into h. head and h must
// not change until the segments are written.
func (e *Editor) Reset(head []byte, h *Head) {
	e.head, e.h = head, h
	e.scratch, e.adds, e.retgt, e.restat = e.scratch[:0], e.adds[:0], false, false
	e.rever = h.Minor == 1 && h.Version.Len() == 8 && string(head[h.Version.Start:h.Version.End]) != "HTTP/1.1"
	n := len(h.Fields)
	if cap(e.ops) < n {
		e.ops = make([]edit, n, n+n/2+8)
	}
	e.ops = e.ops[:n]
	clear(e.ops)
}

// Remove drops field i.
func (e *Editor) Remove(i int) { e.ops[i] = edit{removed: true} }

// RemoveNamed drops every field named name (case-insensitive).
func (e *Editor) RemoveNamed(name string) {
	for i, f := range e.h.Fields {
		if EqualFold(f.Name.Of(e.head), name) {
			e.ops[i] = edit{removed: true}
		}
	}
}

// RemoveConnectionOptions drops the Connection fields and every field a
// Connection token names, as a proxy must before forwarding (RFC 9110
// §7.6.1). Tokens naming Content-Length, Transfer-Encoding or Host are
// ignored: a client must not be able to make the proxy strip the framing
// of a body it forwards as is, or the host it routed on.
func (e *Editor) RemoveConnectionOptions() {
	head := e.head
	for _, f := range e.h.Fields {
		if !EqualFold(f.Name.Of(head), "connection") {
			continue
		}
		v := f.Value.Of(head)
		for k := 0; k < len(v); {
			s, t, next := listElem(v, k)
			k = next
			tok := v[s:t]
			if len(tok) == 0 || EqualFold(tok, "content-length") || EqualFold(tok, "transfer-encoding") || EqualFold(tok, "host") {
				continue
			}
			for i, g := range e.h.Fields {
				if n := g.Name.Of(head); len(n) == len(tok) && equalFoldBytes(n, tok) {
					e.ops[i] = edit{removed: true}
				}
			}
		}
	}
	e.RemoveNamed("connection")
}

func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// validValue reports whether v can be a field value: field-vchar, SP,
// HTAB and obs-text only (RFC 9110 §5.5), so no CR, LF or NUL that would
// inject a line.
func validValue(v []byte) bool {
	for _, c := range v {
		if class[c]&cValue == 0 {
			return false
		}
	}
	return true
}

// Replace sets the value of field i, keeping its name and the OWS after
// the colon. value is copied. A removed field comes back with this value.
// ErrInvalidEdit if value has bytes not allowed in a field value.
func (e *Editor) Replace(i int, value []byte) error {
	if !validValue(value) {
		return ErrInvalidEdit
	}
	vs := len(e.scratch)
	e.scratch = append(e.scratch, value...)
	e.ops[i] = edit{replaced: true, vs: vs, ve: len(e.scratch)}
	return nil
}

// Add appends the field line "name: value" after the last field. value is
// copied. ErrInvalidEdit if name is not a token or value has bytes not
// allowed in a field value.
func (e *Editor) Add(name string, value []byte) error {
	if !validName(name) || !validValue(value) {
		return ErrInvalidEdit
	}
	e.adds = append(e.adds, name...)
	e.adds = append(e.adds, ':', ' ')
	e.adds = append(e.adds, value...)
	e.adds = append(e.adds, '\r', '\n')
	return nil
}

// SetTarget replaces the request-target of a request (a path rewrite).
// target is copied; it must be a non-empty run of the bytes a
// request-target may hold, else ErrInvalidEdit.
func (e *Editor) SetTarget(target []byte) error {
	if e.h.Kind != Request || len(target) == 0 {
		return ErrInvalidEdit
	}
	for _, c := range target {
		if class[c]&cTarget == 0 {
			return ErrInvalidEdit
		}
	}
	s := len(e.scratch)
	e.scratch = append(e.scratch, target...)
	e.target, e.retgt = [2]int{s, len(e.scratch)}, true
	return nil
}

// Target is the request-target as edited.
func (e *Editor) Target() []byte {
	if e.retgt {
		return e.scratch[e.target[0]:e.target[1]]
	}
	return e.h.Target.Of(e.head)
}

// SetStatus replaces the status line of a response with
// "HTTP/1.1 code reason". code must be 100 to 999 and reason hold only
// the bytes a reason phrase may (RFC 9112 §4), else ErrInvalidEdit.
func (e *Editor) SetStatus(code int, reason string) error {
	if e.h.Kind != Response || code < 100 || code > 999 || !validValue([]byte(reason)) {
		return ErrInvalidEdit
	}
	s := len(e.scratch)
	e.scratch = append(e.scratch, "HTTP/1.1 "...)
	e.scratch = append(e.scratch, byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10), ' ')
	e.scratch = append(e.scratch, reason...)
	e.target, e.restat = [2]int{s, len(e.scratch)}, true
	return nil
}

// startLineEnd is the offset of the CRLF that ends the start line.
func (e *Editor) startLineEnd() int {
	if len(e.h.Fields) > 0 {
		return int(e.h.Fields[0].Name.Start) - 2
	}
	return e.h.Len - 4
}

// Get returns the value the edited head gives field name
// (case-insensitive): the first field of that name the edits kept, else
// the first one added. ok is false when there is none.
func (e *Editor) Get(name string) (value []byte, ok bool) {
	for i, f := range e.h.Fields {
		if !EqualFold(f.Name.Of(e.head), name) {
			continue
		}
		switch op := e.ops[i]; {
		case op.removed:
			continue
		case op.replaced:
			return e.scratch[op.vs:op.ve], true
		}
		return f.Value.Of(e.head), true
	}
	for rest := e.adds; len(rest) > 0; {
		line, n := nextAdded(rest)
		rest = rest[n:]
		if c := indexColon(line); c >= 0 && EqualFold(line[:c], name) {
			return line[c+2:], true
		}
	}
	return nil, false
}

// Del drops every field named name (case-insensitive), the original ones
// and those added.
func (e *Editor) Del(name string) {
	e.RemoveNamed(name)
	kept := e.adds[:0]
	for rest := e.adds; len(rest) > 0; {
		line, n := nextAdded(rest)
		if c := indexColon(line); c < 0 || !EqualFold(line[:c], name) {
			kept = append(kept, rest[:n]...) // in place: kept never passes rest
		}
		rest = rest[n:]
	}
	e.adds = kept
}

// Set makes value the only value of field name: the fields of that name
// are dropped and one is added. ErrInvalidEdit as for Add (nothing is
// changed then).
func (e *Editor) Set(name string, value []byte) error {
	if !validName(name) || !validValue(value) {
		return ErrInvalidEdit
	}
	e.Del(name)
	return e.Add(name, value)
}

// EachField calls f with the name and value of each field of the edited
// head, in order (the original fields the edits kept, with their new
// values, then the added ones): for a caller that re-encodes the head
// (an HTTP/2 HEADERS frame) rather than writing its bytes. The slices
// are valid until the next edit or Reset.
func (e *Editor) EachField(f func(name, value []byte)) {
	for i, fl := range e.h.Fields {
		switch op := e.ops[i]; {
		case op.removed:
		case op.replaced:
			f(fl.Name.Of(e.head), e.scratch[op.vs:op.ve])
		default:
			f(fl.Name.Of(e.head), fl.Value.Of(e.head))
		}
	}
	for rest := e.adds; len(rest) > 0; {
		line, n := nextAdded(rest)
		rest = rest[n:]
		if c := indexColon(line); c >= 0 {
			f(line[:c], line[c+2:])
		}
	}
}

// Status is the status code of the edited response head.
func (e *Editor) Status() int {
	if e.restat {
		b := e.scratch[e.target[0]+9 : e.target[0]+12] // "HTTP/1.1 NNN"
		return int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0')
	}
	return e.h.Status
}

// ValidFieldName reports whether name can be a field name (a token).
func ValidFieldName(name string) bool { return validName(name) }

// ValidFieldValue reports whether v can be a field value: no CR, LF or
// NUL that would inject a line (RFC 9110 §5.5).
func ValidFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if class[v[i]]&cValue == 0 {
			return false
		}
	}
	return true
}

// nextAdded splits the first "name: value\r\n" line off adds: the line
// without its CRLF and the bytes it takes.
func nextAdded(adds []byte) (line []byte, n int) {
	for i := 0; i+1 < len(adds); i++ {
		if adds[i] == '\r' && adds[i+1] == '\n' {
			return adds[:i], i + 2
		}
	}
	return adds, len(adds)
}

func indexColon(line []byte) int {
	for i, c := range line {
		if c == ':' {
			return i
		}
	}
	return -1
}

func validName(name string) bool {
	if len(name) == 0 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if class[name[i]]&cToken == 0 {
			return false
		}
	}
	return true
}

var http11 = []byte("HTTP/1.1")

// lineEnd is the offset just past the CRLF of field line i.
func (e *Editor) lineEnd(i int) int {
	if i+1 < len(e.h.Fields) {
		return int(e.h.Fields[i+1].Name.Start)
	}
	return e.h.Len - 2
}

// walk calls emit with the pieces of the edited head, in order. Runs of
// untouched original bytes are single pieces.
func (e *Editor) walk(emit func(p []byte)) {
	head, h := e.head, e.h
	cur := h.Start // first original byte not yet emitted
	switch {
	case e.retgt:
		emit(head[cur:h.Target.Start])
		emit(e.scratch[e.target[0]:e.target[1]])
		cur = int(h.Target.End)
	case e.restat:
		emit(e.scratch[e.target[0]:e.target[1]])
		cur = e.startLineEnd()
	}
	if e.rever && !e.restat {
		if s := int(h.Version.Start); s > cur {
			emit(head[cur:s])
		}
		emit(http11)
		cur = int(h.Version.End)
	}
	for i, op := range e.ops {
		f := h.Fields[i]
		switch {
		case op.removed:
			if s := int(f.Name.Start); s > cur {
				emit(head[cur:s])
			}
			cur = e.lineEnd(i)
		case op.replaced:
			emit(head[cur:f.Value.Start])
			if op.ve > op.vs {
				emit(e.scratch[op.vs:op.ve])
			}
			cur = e.lineEnd(i) - 2 // the line's CRLF starts the next run
		}
	}
	if len(e.adds) > 0 {
		if s := h.Len - 2; s > cur {
			emit(head[cur:s])
		}
		emit(e.adds)
		cur = h.Len - 2
	}
	emit(head[cur:h.Len])
}

// Segments appends the edited head to dst, as slices that alias the
// original head (untouched runs) or the editor's buffers (new bytes), and
// returns it. They are valid until the next edit or Reset.
func (e *Editor) Segments(dst [][]byte) [][]byte {
	e.walk(func(p []byte) { dst = append(dst, p) })
	return dst
}

// Len is the length of the edited head.
func (e *Editor) Len() int {
	h := e.h
	n := h.Len - h.Start + len(e.adds)
	switch {
	case e.retgt:
		n += e.target[1] - e.target[0] - h.Target.Len()
	case e.restat:
		n += e.target[1] - e.target[0] - (e.startLineEnd() - h.Start)
	}
	for i, op := range e.ops {
		f := h.Fields[i]
		switch {
		case op.removed:
			n -= e.lineEnd(i) - int(f.Name.Start)
		case op.replaced:
			n += op.ve - op.vs - (e.lineEnd(i) - 2 - int(f.Value.Start))
		}
	}
	return n
}

// AppendTo appends the edited head to dst (a copy, for callers that do not
// use writev).
func (e *Editor) AppendTo(dst []byte) []byte {
	e.walk(func(p []byte) { dst = append(dst, p...) })
	return dst
}
