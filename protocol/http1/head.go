package http1

// Kind says whether a head is a request or a response.
type Kind uint8

const (
	Request Kind = iota
	Response
)

func (k Kind) String() string {
	if k == Response {
		return "response"
	}
	return "request"
}

// Span is a range of bytes [Start, End) of a message head. Offsets are
// relative to the first byte of the slice given to [Parser.Parse], which
// always starts at the message head.
type Span struct{ Start, End uint32 }

// Of returns the bytes of s in head (no copy).
func (s Span) Of(head []byte) []byte { return head[s.Start:s.End] }

// Len is the length of s.
func (s Span) Len() int { return int(s.End - s.Start) }

func span(start, end int) Span { return Span{uint32(start), uint32(end)} }

// Field is one field line: its name and its value with leading and
// trailing OWS removed (RFC 9112 §5.1).
type Field struct{ Name, Value Span }

// Method identifies the common methods so that sessions need not compare
// bytes (RFC 9110 §9). Methods are case-sensitive: "get" is MethodOther.
type Method uint8

const (
	MethodOther Method = iota
	MethodGET
	MethodHEAD
	MethodPOST
	MethodPUT
	MethodDELETE
	MethodCONNECT
	MethodOPTIONS
	MethodTRACE
	MethodPATCH
)

func lookupMethod(m []byte) Method {
	switch string(m) { // no allocation: the compiler compares in place
	case "GET":
		return MethodGET
	case "HEAD":
		return MethodHEAD
	case "POST":
		return MethodPOST
	case "PUT":
		return MethodPUT
	case "DELETE":
		return MethodDELETE
	case "CONNECT":
		return MethodCONNECT
	case "OPTIONS":
		return MethodOPTIONS
	case "TRACE":
		return MethodTRACE
	case "PATCH":
		return MethodPATCH
	}
	return MethodOther
}

// TargetForm is the form of a request-target (RFC 9112 §3.2).
type TargetForm uint8

const (
	FormOrigin    TargetForm = iota // "/path?query" (§3.2.1)
	FormAbsolute                    // "http://host/path" (§3.2.2)
	FormAuthority                   // "host:port", CONNECT only (§3.2.3)
	FormAsterisk                    // "*", OPTIONS only (§3.2.4)
)

// Head is a parsed message head. Every Span refers to the slice given to
// [Parser.Parse]; nothing is copied. A Head is reused from message to
// message: Fields keeps its capacity, so parsing allocates nothing once it
// has seen the largest head.
type Head struct {
	Kind Kind

	// Start is the offset of the start line: 0, or past the empty lines
	// a request may be preceded by (RFC 9112 §2.2).
	Start int

	// Requests (RFC 9112 §3).
	Method    Span
	MethodID  Method
	Target    Span
	Form      TargetForm
	Authority Span // host[:port] of an absolute-form (after "//") or authority-form target

	// Both: HTTP-version (RFC 9112 §2.3). Major is always 1.
	Version Span
	Minor   uint8

	// Responses (RFC 9112 §4).
	Status int
	Reason Span // may be empty

	// Fields in order of appearance.
	Fields []Field

	// Len is the length of the head: start line, field lines and the
	// final CRLF, plus any empty lines before the request line. The body
	// (if any) starts at b[Len].
	Len int

	// Derived during parsing.
	ContentLength int64 // valid Content-Length, -1 if absent (RFC 9112 §6.2)
	HasTE         bool  // a Transfer-Encoding field is present
	Chunked       bool  // Transfer-Encoding ends in chunked (RFC 9112 §6.1)

	ConnClose     bool // Connection has "close" (RFC 9110 §7.6.1, RFC 9112 §9.6)
	ConnKeepAlive bool // Connection has "keep-alive" (HTTP/1.0 persistence, RFC 9112 §C.2.2)
	ConnUpgrade   bool // Connection has "upgrade" (RFC 9110 §7.8)

	Upgrade    Span // value of the first Upgrade field (HTTP/1.1 only, RFC 9110 §7.8)
	HasUpgrade bool
	Expect100  bool // HTTP/1.1 request Expect has "100-continue" (RFC 9110 §10.1.1)

	Host    Span // request Host value (RFC 9110 §7.2); may be empty
	HasHost bool
}

// KeepAlive reports whether the connection may carry another message after
// this one, by the version and Connection rules of RFC 9112 §9.3. A body
// delimited by the close of the connection (BodyUntilClose) ends it anyway.
func (h *Head) KeepAlive() bool {
	if h.ConnClose {
		return false
	}
	if h.Minor == 0 {
		return h.ConnKeepAlive
	}
	return true
}

// FieldIndex returns the index of the first field named name (case-insensitive)
// at or after index from, or -1.
func (h *Head) FieldIndex(head []byte, name string, from int) int {
	for i := from; i < len(h.Fields); i++ {
		if EqualFold(h.Fields[i].Name.Of(head), name) {
			return i
		}
	}
	return -1
}

// ConnectionTokens calls fn with each connection-option of every
// Connection field, trimmed, in order (RFC 9110 §7.6.1). A proxy removes
// the fields these tokens name before forwarding (see
// [Editor.RemoveConnectionOptions]). token aliases head.
func (h *Head) ConnectionTokens(head []byte, fn func(token []byte)) {
	for _, f := range h.Fields {
		if !EqualFold(f.Name.Of(head), "connection") {
			continue
		}
		v := f.Value.Of(head)
		for i := 0; i < len(v); {
			s, e, next := listElem(v, i)
			if e > s {
				fn(v[s:e])
			}
			i = next
		}
	}
}

// BodyKind says how the body of a message is delimited (RFC 9112 §6.3).
type BodyKind uint8

const (
	BodyNone       BodyKind = iota // no body: the next message starts at Len
	BodyLength                     // exactly n bytes (Content-Length)
	BodyChunked                    // chunked transfer coding, ends with the last chunk and trailers
	BodyUntilClose                 // response read until the server closes the connection
	BodyTunnel                     // no HTTP body: after the head, the connection is a tunnel (CONNECT 2xx, 101)
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	case BodyTunnel:
		return "tunnel"
	}
	return "invalid"
}

// Body returns how the body of this message is delimited, applying
// RFC 9112 §6.3 in order. For a response, the caller says whether the
// request it answers was a HEAD or a CONNECT; both are ignored for
// requests. n is the length for BodyLength, 0 for BodyNone, -1 otherwise.
//
// Invalid combinations (Content-Length with Transfer-Encoding, several
// Content-Length values, a request whose Transfer-Encoding does not end in
// chunked) were rejected by the parser already.
func (h *Head) Body(requestWasHEAD, requestWasCONNECT bool) (kind BodyKind, n int64) {
	if h.Kind == Request {
		switch { // §6.3 points 4, 6 and 7
		case h.Chunked:
			return BodyChunked, -1
		case h.ContentLength > 0:
			return BodyLength, h.ContentLength
		}
		return BodyNone, 0
	}
	switch {
	case h.Status == 101: // RFC 9110 §15.2.2: the new protocol starts after the head
		return BodyTunnel, -1
	case h.Status < 200, requestWasHEAD: // §6.3 point 1
		return BodyNone, 0
	case requestWasCONNECT && h.Status < 300: // §6.3 point 2 (no body either)
		return BodyTunnel, -1
	case h.Status == 204, h.Status == 304: // §6.3 point 1
		return BodyNone, 0
	case h.Chunked: // point 4
		return BodyChunked, -1
	case h.HasTE: // point 4: a response whose coding does not end in chunked
		return BodyUntilClose, -1
	case h.ContentLength == 0: // point 6
		return BodyNone, 0
	case h.ContentLength > 0:
		return BodyLength, h.ContentLength
	}
	return BodyUntilClose, -1 // point 8
}

// Limits bound everything the parsers buffer or scan. Zero fields take the
// defaults; values are capped at 1 GiB.
type Limits struct {
	// MaxHead bounds the head: start line, fields and final CRLF
	// (default 16 KiB). Passing it is ErrHeadTooLarge (431).
	MaxHead int
	// MaxFields bounds the number of field lines (default 100), and the
	// number of trailer fields of a chunked body. ErrTooManyFields (431).
	MaxFields int
	// MaxLine bounds the request line or status line, CRLF included
	// (default 8 KiB). ErrURITooLong (414) for a request.
	MaxLine int
	// MaxChunkLine bounds a chunk-size line with its extensions, CRLF
	// included (default 4 KiB). ErrChunkLineTooLong (400).
	MaxChunkLine int
	// MaxTrailers bounds the trailer section of a chunked body, final
	// CRLF included (default 8 KiB). ErrTrailersTooLarge (431).
	MaxTrailers int
}

// Defaults for zero Limits fields.
const (
	DefaultMaxHead      = 16 << 10
	DefaultMaxFields    = 100
	DefaultMaxLine      = 8 << 10
	DefaultMaxChunkLine = 4 << 10
	DefaultMaxTrailers  = 8 << 10

	// MaxContentLength is the largest Content-Length or chunk size
	// accepted: 2^62, far above any real body, and safe from overflow.
	MaxContentLength = 1 << 62

	// MaxEmptyLines is how many empty lines (CRLF) may precede a
	// request line (RFC 9112 §2.2: a server SHOULD ignore at least one).
	MaxEmptyLines = 4

	maxLimit = 1 << 30
)

func pick(v, def int) int {
	switch {
	case v <= 0:
		return def
	case v > maxLimit:
		return maxLimit
	}
	return v
}

func (l Limits) maxHead() int      { return pick(l.MaxHead, DefaultMaxHead) }
func (l Limits) maxFields() int    { return pick(l.MaxFields, DefaultMaxFields) }
func (l Limits) maxLine() int      { return pick(l.MaxLine, DefaultMaxLine) }
func (l Limits) maxChunkLine() int { return pick(l.MaxChunkLine, DefaultMaxChunkLine) }
func (l Limits) maxTrailers() int  { return pick(l.MaxTrailers, DefaultMaxTrailers) }
