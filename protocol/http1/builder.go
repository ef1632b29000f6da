package http1

// Builder writes a message head whose parts were parsed elsewhere, such
// as the fields of an HTTP/2 HEADERS frame, as HTTP/1.1 bytes, and fills
// as it goes the Head that [Parser.Parse] would give for those bytes,
// with Parse's checks and limits: the head is not parsed a second time.
//
// Start a head with Request or Response, add its fields with Field, and
// finish it with End. The first failed check is kept and reported by
// End (its status as Parse's would be); the bytes are then unusable.
type Builder struct {
	Limits Limits

	p   Parser
	b   []byte
	h   *Head
	err *Error
}

// Request starts a request head "method target HTTP/1.1" in dst[:0]
// (whose capacity it reuses), described by h.
func (w *Builder) Request(dst []byte, h *Head, method, target string) {
	w.start(dst, h, Request)
	b := append(w.b, method...)
	b = append(b, ' ')
	t := len(b)
	b = append(b, target...)
	w.b = append(b, " HTTP/1.1\r\n"...)
	h.Method, h.MethodID = span(0, len(method)), lookupMethod(w.b[:len(method)])
	h.Target = span(t, t+len(target))
	h.Version, h.Minor = span(t+len(target)+1, t+len(target)+9), 1
	switch {
	case len(method) == 0 || !isToken(w.b[:len(method)]):
		w.fail(ErrBadMethod)
	case len(target) == 0 || scanTarget(w.b, t, t+len(target)) != t+len(target):
		w.fail(ErrBadTarget)
	case len(w.b) > w.Limits.maxLine():
		w.fail(w.p.lineTooLong())
	default:
		if err := checkTarget(w.b, h); err != nil {
			w.fail(err)
		}
	}
}

// Response starts a response head "HTTP/1.1 status reason" in dst[:0],
// described by h.
func (w *Builder) Response(dst []byte, h *Head, status int, reason string) {
	w.start(dst, h, Response)
	b := append(w.b, "HTTP/1.1 "...)
	h.Version, h.Minor = span(0, 8), 1
	if status < 100 || status > 599 {
		w.fail(ErrBadStatus)
		return
	}
	b = append(b, byte('0'+status/100), byte('0'+status/10%10), byte('0'+status%10), ' ')
	h.Status = status
	r := len(b)
	b = append(b, reason...)
	h.Reason = span(r, len(b))
	w.b = append(b, "\r\n"...)
	switch {
	case scanValue(w.b, r, r+len(reason)) != r+len(reason):
		w.fail(ErrBadStatus)
	case len(w.b) > w.Limits.maxLine():
		w.fail(w.p.lineTooLong())
	}
}

func (w *Builder) start(dst []byte, h *Head, kind Kind) {
	w.p = Parser{Limits: w.Limits, kind: kind}
	*h = Head{Kind: kind, Fields: h.Fields[:0], ContentLength: -1}
	w.b, w.h, w.err = dst[:0], h, nil
}

func (w *Builder) fail(err *Error) {
	if w.err == nil {
		w.err = err
	}
}

// Field adds the field line "name: value". Leading and trailing
// whitespace of value is not part of it, as Parse would trim it.
func (w *Builder) Field(name, value string) {
	if w.err != nil {
		return
	}
	h := w.h
	for len(value) > 0 && isOWS(value[0]) {
		value = value[1:]
	}
	for len(value) > 0 && isOWS(value[len(value)-1]) {
		value = value[:len(value)-1]
	}
	n := len(w.b)
	b := append(append(w.b, name...), ": "...)
	v := len(b)
	w.b = append(append(b, value...), "\r\n"...)
	f := Field{Name: span(n, n+len(name)), Value: span(v, v+len(value))}
	switch {
	case len(h.Fields) >= w.Limits.maxFields():
		w.fail(ErrTooManyFields)
		return
	case len(name) == 0:
		w.fail(ErrEmptyFieldName)
		return
	case !isToken(w.b[n : n+len(name)]):
		w.fail(ErrBadFieldName)
		return
	case scanValue(w.b, v, v+len(value)) != v+len(value):
		w.fail(ErrBadFieldValue)
		return
	case len(w.b)+2 > w.Limits.maxHead():
		w.fail(ErrHeadTooLarge)
		return
	}
	h.Fields = append(h.Fields, f)
	if err := w.p.field(w.b, h, f); err != nil {
		w.fail(err)
	}
}

// End ends the head with its empty line and returns its bytes, or the
// first check that failed (an *Error).
func (w *Builder) End() ([]byte, error) {
	w.b = append(w.b, "\r\n"...)
	w.h.Len = len(w.b)
	if w.h.Len > w.Limits.maxHead() {
		w.fail(ErrHeadTooLarge)
	}
	if w.err == nil {
		if err := w.p.finish(w.h); err != nil {
			w.fail(err)
		}
	}
	if w.err != nil {
		return w.b, w.err
	}
	return w.b, nil
}
