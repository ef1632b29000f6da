package http1

// Parser states, in the order a head goes through them. The request-line
// and status-line states are contiguous (stMethod..stLineLF) so that the
// MaxLine check is one comparison.
const (
	stInit       uint8 = iota // nothing seen: the next Parse resets the Head
	stStart                   // before the start line (requests: empty lines allowed)
	stLeadLF                  // after the CR of an empty line before the request line
	stMethod                  // request: method token
	stTarget                  // request: request-target
	stVersion                 // request: HTTP-version, then CR
	stReqLF                   // request: LF ending the request line
	stRVersion                // response: HTTP-version, then SP
	stStatus                  // response: 3 digits, then SP or CR
	stReason                  // response: reason-phrase, then CR
	stLineLF                  // response: LF ending the status line
	stFieldStart              // start of a field line, or CR of the final CRLF
	stName                    // field name, then ":"
	stOWS                     // OWS before the field value
	stValue                   // field value, then CR
	stFieldLF                 // LF ending a field line
	stHeadLF                  // LF of the final CRLF
	stDone                    // head complete
	stFailed                  // error (sticky)
)

// Parser parses one message head incrementally. The zero value is ready to
// use with default [Limits]; set Limits before the first Parse. Call Reset
// before the next message.
//
// The parser keeps a scan position: every call continues at the first byte
// it has not examined, and each byte of the head is examined once (the
// only exception: trailing OWS of a field value is trimmed by stepping
// back from its CR). Bytes are never copied; the Head refers to them by
// offset.
type Parser struct {
	Limits Limits

	state uint8
	kind  Kind
	empty uint8 // empty lines skipped before the request line
	pos   int   // next byte to examine
	mark  int   // start of the element being scanned
	name  Span  // name of the field whose value is being scanned
	err   error

	chunked     uint8 // times "chunked" appeared in Transfer-Encoding
	lastChunked bool  // the last transfer coding so far is chunked
}

// Reset prepares p for the next message, keeping its Limits.
func (p *Parser) Reset() { *p = Parser{Limits: p.Limits} }

// Offset is the number of bytes examined so far; after an error, the
// offset of the byte that proved it (for logs).
func (p *Parser) Offset() int { return p.pos }

func (p *Parser) fail(pos int, err *Error) (bool, error) {
	p.pos, p.state, p.err = pos, stFailed, err
	return false, err
}

// Parse continues parsing the head at the start of b into h.
//
// b must start at the first byte of the message (for a request, possibly
// an empty line) and hold at least the bytes given on the previous call,
// unchanged: the caller appends what it reads and calls again with the
// longer slice. It may move the buffer between calls (offsets are relative
// to b) but must not drop or alter bytes of the message head. kind is read
// on the first call after Reset.
//
// Parse returns done once the final CRLF is seen: h.Len is then the length
// of the head and b[h.Len:] is untouched (the body or the next message).
// (false, nil) means that more bytes are needed. Errors are *Error values
// and are sticky until Reset; a failing head is detected at the first byte
// that proves it, and a head too large as soon as Limits.MaxHead bytes
// were scanned without its end (so a caller never needs to buffer more
// than MaxHead bytes).
func (p *Parser) Parse(b []byte, kind Kind, h *Head) (done bool, err error) {
	switch p.state {
	case stDone:
		return true, nil
	case stFailed:
		return false, p.err
	case stInit:
		p.kind = kind
		fields := h.Fields[:0]
		*h = Head{Kind: kind, Fields: fields, ContentLength: -1}
		p.state = stStart
	}
	pos, state := p.pos, p.state
	if len(b) < pos {
		return p.fail(pos, ErrBufferShrunk)
	}
	maxHead, maxLine, maxFields := p.Limits.maxHead(), p.Limits.maxLine(), p.Limits.maxFields()
	end := min(len(b), maxHead)
	// The start line must end (LF included) before lineMax.
	lineMax := h.Start + maxLine
	lineStop := min(end, lineMax)

	for pos < end {
		if state >= stMethod && state <= stLineLF && pos >= lineMax {
			return p.fail(pos, p.lineTooLong())
		}
		switch state {
		case stStart: // RFC 9112 §2.2: ignore a few empty lines before a request line
			if b[pos] == '\r' && p.kind == Request {
				if p.empty == MaxEmptyLines {
					return p.fail(pos, ErrTooManyEmptyLines)
				}
				pos++
				state = stLeadLF
				continue
			}
			h.Start = pos
			lineMax = pos + maxLine
			lineStop = min(end, lineMax)
			p.mark = pos
			if p.kind == Request {
				state = stMethod
			} else {
				state = stRVersion
			}

		case stLeadLF:
			if b[pos] != '\n' {
				return p.fail(pos, ErrBareCR)
			}
			pos++
			p.empty++
			state = stStart

		case stMethod: // method = token (RFC 9112 §3.1)
			pos = scan(b, pos, lineStop, cToken)
			if pos == lineStop {
				break
			}
			if b[pos] != ' ' || pos == p.mark { // exactly one SP (RFC 9112 §3)
				return p.fail(pos, ErrBadMethod)
			}
			h.Method = span(p.mark, pos)
			h.MethodID = lookupMethod(b[p.mark:pos])
			pos++
			p.mark = pos
			state = stTarget

		case stTarget: // request-target (RFC 9112 §3.2)
			pos = scanTarget(b, pos, lineStop)
			if pos == lineStop {
				break
			}
			if b[pos] != ' ' || pos == p.mark {
				return p.fail(pos, ErrBadTarget)
			}
			h.Target = span(p.mark, pos)
			if err := checkTarget(b, h); err != nil {
				return p.fail(pos, err)
			}
			pos++
			p.mark = pos
			state = stVersion

		case stVersion: // HTTP-version CRLF (RFC 9112 §2.3, §3)
			for pos < lineStop {
				c, i := b[pos], pos-p.mark
				if i < 8 {
					if !versionByte(i, c) {
						return p.fail(pos, ErrBadVersion)
					}
					pos++
					continue
				}
				if c != '\r' {
					return p.fail(pos, ErrBadVersion)
				}
				if err := setVersion(b, h, p.mark); err != nil {
					return p.fail(pos, err)
				}
				pos++
				state = stReqLF
				break
			}

		case stReqLF, stLineLF:
			if b[pos] != '\n' {
				return p.fail(pos, ErrBareCR)
			}
			pos++
			state = stFieldStart

		case stRVersion: // status-line = HTTP-version SP ... (RFC 9112 §4)
			for pos < lineStop {
				c, i := b[pos], pos-p.mark
				if i < 8 {
					if !versionByte(i, c) {
						return p.fail(pos, ErrBadVersion)
					}
					pos++
					continue
				}
				if c != ' ' {
					return p.fail(pos, ErrBadVersion)
				}
				if err := setVersion(b, h, p.mark); err != nil {
					return p.fail(pos, err)
				}
				pos++
				p.mark = pos
				state = stStatus
				break
			}

		case stStatus: // status-code = 3DIGIT, 100..599 (RFC 9110 §15)
			for pos < lineStop {
				c, i := b[pos], pos-p.mark
				if i < 3 {
					if class[c]&cDigit == 0 {
						return p.fail(pos, ErrBadStatus)
					}
					h.Status = h.Status*10 + int(c-'0')
					pos++
					continue
				}
				if h.Status < 100 || h.Status > 599 {
					return p.fail(pos, ErrBadStatus)
				}
				switch c {
				case ' ':
					pos++
					p.mark = pos
					state = stReason
				case '\r': // lenient: no SP before an empty reason, see doc.go
					h.Reason = span(pos, pos)
					pos++
					state = stLineLF
				default:
					return p.fail(pos, ErrBadStatus)
				}
				break
			}

		case stReason: // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
			pos = scanValue(b, pos, lineStop)
			if pos == lineStop {
				break
			}
			if b[pos] != '\r' {
				return p.fail(pos, ErrBadStatus)
			}
			h.Reason = span(p.mark, pos)
			pos++
			state = stLineLF

		// A field line runs through these cases in one pass when its bytes
		// are all there (fallthrough); each case also resumes on its own.
		case stFieldLF:
			if b[pos] != '\n' {
				return p.fail(pos, ErrBareCR)
			}
			pos++
			state = stFieldStart
			if pos == end {
				break
			}
			fallthrough

		case stFieldStart: // field-line, or the CRLF ending the head (RFC 9112 §2.1, §5)
			if c := b[pos]; class[c]&cToken == 0 {
				switch c {
				case '\r':
					pos++
					state = stHeadLF
					continue
				case ' ', '\t': // obs-fold (§5.2), or whitespace after the start line (§2.2)
					return p.fail(pos, ErrObsFold)
				case ':':
					return p.fail(pos, ErrEmptyFieldName)
				case '\n':
					return p.fail(pos, ErrBareLF)
				}
				return p.fail(pos, ErrBadFieldName)
			}
			if len(h.Fields) >= maxFields {
				return p.fail(pos, ErrTooManyFields)
			}
			p.mark = pos
			pos++
			state = stName
			fallthrough

		case stName: // field-name = token (RFC 9110 §5.1)
			pos = scan(b, pos, end, cToken)
			if pos == end {
				break
			}
			switch b[pos] {
			case ':':
			case ' ', '\t': // RFC 9112 §5.1: MUST reject with 400
				return p.fail(pos, ErrSpaceBeforeColon)
			default: // CR, LF (a line without a colon), or not a tchar
				return p.fail(pos, ErrBadFieldName)
			}
			p.name = span(p.mark, pos)
			pos++
			state = stOWS
			fallthrough

		case stOWS:
			for pos < end && isOWS(b[pos]) {
				pos++
			}
			if pos == end {
				break
			}
			p.mark = pos
			state = stValue
			fallthrough

		case stValue: // field-value = *field-content (RFC 9110 §5.5)
			pos = scanValue(b, pos, end)
			if pos == end {
				break
			}
			switch b[pos] {
			case '\r':
			case '\n':
				return p.fail(pos, ErrBareLF)
			default: // CTL, NUL, DEL (RFC 9110 §5.5: MUST reject or replace)
				return p.fail(pos, ErrBadFieldValue)
			}
			vend := pos
			for vend > p.mark && isOWS(b[vend-1]) {
				vend--
			}
			f := Field{Name: p.name, Value: span(p.mark, vend)}
			h.Fields = append(h.Fields, f)
			if err := p.field(b, h, f); err != nil {
				return p.fail(pos, err)
			}
			pos++
			state = stFieldLF

		case stHeadLF:
			if b[pos] != '\n' {
				return p.fail(pos, ErrBareCR)
			}
			pos++
			h.Len = pos
			if err := p.finish(h); err != nil {
				return p.fail(pos, err)
			}
			p.pos, p.state = pos, stDone
			return true, nil
		}
	}
	if state >= stMethod && state <= stLineLF && pos >= lineMax {
		return p.fail(pos, p.lineTooLong())
	}
	if pos >= maxHead {
		return p.fail(pos, ErrHeadTooLarge)
	}
	p.pos, p.state = pos, state
	return false, nil
}

func (p *Parser) lineTooLong() *Error {
	if p.kind == Response {
		return ErrStatusLineTooLong
	}
	return ErrURITooLong
}

// versionByte checks byte i of HTTP-version = "HTTP/" DIGIT "." DIGIT
// (RFC 9112 §2.3; HTTP-name is case-sensitive).
func versionByte(i int, c byte) bool {
	switch i {
	case 5, 7:
		return class[c]&cDigit != 0
	case 6:
		return c == '.'
	}
	return c == "HTTP/"[i]
}

// setVersion records a syntactically valid version at b[at:at+8].
// HTTP/1.0 and HTTP/1.1 are what they say; a higher 1.x minor is handled
// as 1.1 (RFC 9110 §2.5: a recipient processes a higher minor version as
// the highest it implements), and an [Editor] forwards such a head as
// HTTP/1.1, so that nothing downstream sees a version nobody checked.
// Any other major version is 505.
func setVersion(b []byte, h *Head, at int) *Error {
	h.Version = span(at, at+8)
	if b[at+5] != '1' {
		return ErrUnsupportedVersion
	}
	h.Minor = min(b[at+7]-'0', 1)
	return nil
}

// checkTarget checks the form of the request-target against the method
// (RFC 9112 §3.2). Its bytes were checked while scanning.
func checkTarget(b []byte, h *Head) *Error {
	t := h.Target.Of(b)
	switch {
	case h.MethodID == MethodCONNECT: // §3.2.3: authority-form only, with a port (RFC 9110 §9.3.6)
		colon, ok := parseAuthority(t)
		if !ok || colon <= 0 || colon == len(t)-1 {
			return ErrBadTarget
		}
		h.Form, h.Authority = FormAuthority, h.Target
	case t[0] == '/': // §3.2.1
		h.Form = FormOrigin
	case len(t) == 1 && t[0] == '*': // §3.2.4
		if h.MethodID != MethodOPTIONS {
			return ErrBadTarget
		}
		h.Form = FormAsterisk
	default: // §3.2.2: absolute-URI = scheme ":" hier-part [ "?" query ]
		i := 0
		for i < len(t) && t[i] != ':' {
			c := t[i]
			if !('a' <= lower(c) && lower(c) <= 'z' || i > 0 && (class[c]&cDigit != 0 || c == '+' || c == '-' || c == '.')) {
				return ErrBadTarget
			}
			i++
		}
		if i == 0 || i == len(t) {
			return ErrBadTarget
		}
		h.Form = FormAbsolute
		rest := t[i+1:]
		if len(rest) >= 2 && rest[0] == '/' && rest[1] == '/' { // authority
			a := 2
			for a < len(rest) && rest[a] != '/' && rest[a] != '?' {
				a++
			}
			auth := rest[2:a]
			if _, ok := parseAuthority(auth); !ok {
				return ErrBadTarget // includes userinfo (RFC 9110 §4.2.4)
			}
			start := int(h.Target.Start) + i + 3
			h.Authority = span(start, start+len(auth))
		}
		if len(h.Authority.Of(b)) == 0 && (EqualFold(t[:i], "http") || EqualFold(t[:i], "https")) {
			return ErrBadTarget // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid
		}
	}
	return nil
}

// field derives framing and connection facts from one field as soon as
// its value is complete: each value is looked at once more here, only
// for the few fields below.
func (p *Parser) field(b []byte, h *Head, f Field) *Error {
	name, v := f.Name.Of(b), f.Value.Of(b)
	switch len(name) {
	case 4:
		if p.kind == Request && EqualFold(name, "host") { // RFC 9112 §3.2, RFC 9110 §7.2
			if h.HasHost {
				return ErrDuplicateHost
			}
			if _, ok := parseAuthority(v); !ok {
				return ErrBadHost
			}
			h.Host, h.HasHost = f.Value, true
		}
	case 6:
		// RFC 9110 §10.1.1; a server MUST ignore 100-continue in an HTTP/1.0 request.
		if p.kind == Request && h.Minor == 1 && EqualFold(name, "expect") {
			for i := 0; i < len(v); {
				s, e, next := listElem(v, i)
				if EqualFold(v[s:e], "100-continue") {
					h.Expect100 = true
				}
				i = next
			}
		}
	case 7:
		// RFC 9110 §7.8: Upgrade is ignored in HTTP/1.0 (MUST for a server).
		if !h.HasUpgrade && h.Minor == 1 && EqualFold(name, "upgrade") {
			h.Upgrade, h.HasUpgrade = f.Value, true
		}
	case 10:
		if EqualFold(name, "connection") { // RFC 9110 §7.6.1
			for i := 0; i < len(v); {
				s, e, next := listElem(v, i)
				switch tok := v[s:e]; {
				case EqualFold(tok, "close"):
					h.ConnClose = true
				case EqualFold(tok, "keep-alive"):
					h.ConnKeepAlive = true
				case EqualFold(tok, "upgrade"):
					h.ConnUpgrade = true
				}
				i = next
			}
		}
	case 14:
		if EqualFold(name, "content-length") { // RFC 9112 §6.2, §6.3 point 5
			if h.ContentLength >= 0 {
				return ErrDuplicateLength
			}
			n, ok := parseLength(v)
			if !ok {
				return ErrBadContentLength
			}
			h.ContentLength = n
		}
	case 17:
		if EqualFold(name, "transfer-encoding") {
			return p.transferEncoding(h, v)
		}
	}
	return nil
}

// parseLength parses Content-Length = 1*DIGIT. Lists, even of identical
// values ("5, 5", which RFC 9110 §8.6 allows a recipient to accept), signs
// and inner whitespace are rejected; values above MaxContentLength too.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if class[c]&cDigit == 0 {
			return 0, false
		}
		if n > (MaxContentLength-int64(c-'0'))/10 {
			return 0, false // checked before it could overflow
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// transferEncoding checks one Transfer-Encoding field (RFC 9112 §6.1).
// Each element must be a bare token: no empty elements, no parameters.
// chunked may appear once, and in a request only last. In a request every
// coding must be known (chunked, gzip, deflate, compress and their x-
// aliases), else 501. A second Transfer-Encoding field line is rejected:
// a recipient that reads only the first one would frame the body
// differently from one that combines them.
func (p *Parser) transferEncoding(h *Head, v []byte) *Error {
	if h.HasTE {
		return ErrDuplicateEncoding
	}
	h.HasTE = true
	if len(v) == 0 || v[len(v)-1] == ',' { // empty (last) element
		return ErrBadEncoding
	}
	for i := 0; i < len(v); {
		s, e, next := listElem(v, i)
		i = next
		c := v[s:e]
		if !isToken(c) {
			return ErrBadEncoding
		}
		if EqualFold(c, "chunked") {
			p.chunked++
			if p.chunked > 1 {
				return ErrChunkedTwice
			}
			p.lastChunked = true
			continue
		}
		if p.lastChunked && p.kind == Request {
			return ErrChunkedNotLast
		}
		p.lastChunked = false
		if p.kind == Request && !knownCoding(c) {
			return ErrUnknownEncoding
		}
	}
	return nil
}

func knownCoding(c []byte) bool {
	switch len(c) {
	case 4:
		return EqualFold(c, "gzip")
	case 6:
		return EqualFold(c, "x-gzip")
	case 7:
		return EqualFold(c, "deflate")
	case 8:
		return EqualFold(c, "compress")
	case 10:
		return EqualFold(c, "x-compress")
	}
	return false
}

// finish applies the checks that need the whole head.
func (p *Parser) finish(h *Head) *Error {
	if p.kind == Request && h.Minor == 1 && !h.HasHost {
		return ErrMissingHost // RFC 9112 §3.2: MUST respond 400
	}
	if !h.HasTE {
		return nil
	}
	switch {
	case h.Minor == 0: // RFC 9112 §6.1: framing is faulty; refused outright
		return ErrEncodingHTTP10
	case h.ContentLength >= 0: // RFC 9112 §6.3 point 3, §11.2: ought to be an error
		return ErrLengthAndEncoding
	case p.kind == Request && !p.lastChunked: // §6.3 point 4: MUST respond 400
		return ErrChunkedNotLast
	}
	h.Chunked = p.lastChunked
	return nil
}

// scan returns the index of the first byte of b[pos:end] not in class
// mask, or end.
func scan(b []byte, pos, end int, mask uint8) int {
	for i, c := range b[pos:end] {
		if class[c]&mask == 0 {
			return pos + i
		}
	}
	return end
}
