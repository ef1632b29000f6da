package http1

// Chunked body states (RFC 9112 §7.1). The chunk-size line states come
// first (bounded by MaxChunkLine together), then data, then the trailer
// section (bounded by MaxTrailers).
const (
	kSizeStart  uint8 = iota // first HEXDIG of chunk-size
	kSize                    // more HEXDIG, ";", BWS or CR
	kExtBWS                  // BWS that must lead to ";"
	kExtPreName              // BWS, then chunk-ext-name
	kExtName                 // chunk-ext-name
	kExtNameBWS              // BWS after a name: "=" or ";"
	kExtPreVal               // BWS, then chunk-ext-val
	kExtToken                // token value
	kExtQuoted               // quoted-string value
	kExtQPair                // after "\" in a quoted-string
	kExtEnd                  // after a quoted-string: ";", BWS or CR
	kSizeLF                  // LF ending the chunk-size line
	kData                    // chunk-data
	kDataCR                  // CR after chunk-data
	kDataLF                  // LF after chunk-data
	kTrStart                 // trailer field line, or the final CRLF
	kTrName                  // trailer field name
	kTrValue                 // trailer field value
	kTrLF                    // LF ending a trailer line
	kEndLF                   // LF of the final CRLF
)

// Body finds where a body ends, without copying or buffering it: the
// caller forwards every byte Parse accounts for as it arrives. Call Init
// with the result of [Head.Body] for each message (the zero value is an
// empty body, BodyNone).
type Body struct {
	kind      BodyKind
	state     uint8
	done      bool
	err       error
	remaining int64 // BodyLength: bytes left; chunked: data bytes left in the chunk
	size      int64 // chunked: chunk-size being read
	line      int   // bytes of the current chunk-size line
	trailer   int   // bytes of the trailer section
	trailers  int   // trailer fields
	total     int64 // bytes accounted for so far

	maxLine, maxTrailer, maxFields int

	// Decode: the data span of the current call, whether to stop after
	// one run of data, and the trailer section kept when asked.
	decoding   bool
	dataStart  int
	dataEnd    int
	keepTrails bool
	trail      []byte
}

// Init prepares bd for a body of the given kind; length is the byte count
// of a BodyLength body (a negative length is an error at the first Parse).
func (bd *Body) Init(kind BodyKind, length int64, limits Limits) {
	*bd = Body{
		kind:       kind,
		remaining:  length,
		maxLine:    limits.maxChunkLine(),
		maxTrailer: limits.maxTrailers(),
		maxFields:  limits.maxFields(),
	}
	if kind == BodyLength && length < 0 {
		bd.err = ErrBodyKind
	}
}

// Kind is the kind given to Init.
func (bd *Body) Kind() BodyKind { return bd.kind }

// Done reports whether the body is complete.
func (bd *Body) Done() bool { return bd.done }

// Consumed is the number of body bytes accounted for so far, chunk
// framing and trailers included.
func (bd *Body) Consumed() int64 { return bd.total }

// Trailers is the number of trailer fields of a chunked body seen so far.
func (bd *Body) Trailers() int { return bd.trailers }

// KeepTrailers has a chunked body's trailer section kept for
// [Body.TrailerSection]; call it after Init.
func (bd *Body) KeepTrailers() { bd.keepTrails = true }

// TrailerSection is the trailer section of a chunked body Decode went
// through, as the field lines it checked ("name: value" CRLF each,
// without the final CRLF), when KeepTrailers was called; nil without
// trailers.
func (bd *Body) TrailerSection() []byte { return bd.trail }

// Decode is Parse for a recipient that takes the body's content rather
// than its bytes, such as an HTTP/2 peer: of the n bytes of b it accounts
// for, data is the content. For a chunked body that is the data of at
// most one chunk (data is a slice of b; call again for what follows: a
// call that returns no data and no error but n > 0 consumed framing
// only); for the other kinds it is b[:n]. The checks and limits are
// Parse's.
func (bd *Body) Decode(b []byte) (n int, data []byte, done bool, err error) {
	if bd.kind != BodyChunked {
		n, done, err = bd.Parse(b)
		return n, b[:n], done, err
	}
	bd.decoding = true
	bd.dataStart, bd.dataEnd = 0, 0
	n, done, err = bd.Parse(b)
	bd.decoding = false
	return n, b[bd.dataStart:bd.dataEnd], done, err
}

// Parse accounts for the next bytes of the stream. b holds the bytes that
// follow those accounted for by the previous calls (the caller has
// forwarded them); each call examines each new byte once.
//
// n is how many bytes of b belong to the body: all of b until the body
// ends, then done is true and b[n:] belongs to the next message. After
// done, Parse returns (0, true, nil). BodyUntilClose and BodyTunnel take
// every byte and never end (the end of the stream ends them). On error, n
// is the number of valid bytes before the offending one, and the error is
// sticky: the connection cannot be resynchronised and must be closed.
func (bd *Body) Parse(b []byte) (n int, done bool, err error) {
	if bd.err != nil {
		return 0, false, bd.err
	}
	if bd.done {
		return 0, true, nil
	}
	switch bd.kind {
	case BodyNone:
		bd.done = true
		return 0, true, nil
	case BodyLength:
		if int64(len(b)) < bd.remaining {
			bd.remaining -= int64(len(b))
			bd.total += int64(len(b))
			return len(b), false, nil
		}
		n = int(bd.remaining)
		bd.remaining = 0
		bd.total += int64(n)
		bd.done = true
		return n, true, nil
	case BodyUntilClose, BodyTunnel:
		bd.total += int64(len(b))
		return len(b), false, nil
	case BodyChunked:
		n, err = bd.chunked(b)
		bd.total += int64(n)
		if err != nil {
			bd.err = err
			return n, false, err
		}
		return n, bd.done, nil
	}
	bd.err = ErrBodyKind
	return 0, false, bd.err
}

// chunked runs the state machine of RFC 9112 §7.1:
//
//	chunked-body   = *chunk last-chunk trailer-section CRLF
//	chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	last-chunk     = 1*("0") [ chunk-ext ] CRLF
//	chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-val  = token / quoted-string
//	trailer-section = *( field-line CRLF )
//
// Every line must end in CRLF (a bare LF is an error, as in heads), the
// size is at most MaxContentLength (no "0x", no sign, no leading
// whitespace), and extensions are checked but not interpreted.
func (bd *Body) chunked(b []byte) (int, error) {
	pos, st := 0, bd.state
	for pos < len(b) {
		if st == kData {
			avail := int64(len(b) - pos)
			if avail < bd.remaining {
				bd.remaining -= avail
				bd.dataStart, bd.dataEnd = pos, len(b)
				pos = len(b)
				break
			}
			bd.dataStart, bd.dataEnd = pos, pos+int(bd.remaining)
			pos += int(bd.remaining)
			bd.remaining = 0
			st = kDataCR
			if bd.decoding {
				break // one run of data per Decode
			}
			continue
		}
		c := b[pos]
		if st <= kSizeLF {
			bd.line++
			if bd.line > bd.maxLine {
				return pos, ErrChunkLineTooLong
			}
		} else if st >= kTrStart {
			bd.trailer++
			if bd.trailer > bd.maxTrailer {
				return pos, ErrTrailersTooLarge
			}
			if bd.keepTrails && st != kEndLF && !(st == kTrStart && c == '\r') {
				bd.trail = append(bd.trail, c)
			}
		}
		switch st {
		case kSizeStart:
			if class[c]&cHex == 0 {
				return pos, ErrBadChunkSize
			}
			bd.size = int64(unhex(c))
			st = kSize
		case kSize:
			switch {
			case class[c]&cHex != 0:
				if bd.size >= MaxContentLength>>4 {
					return pos, ErrChunkSizeOverflow
				}
				bd.size = bd.size<<4 | int64(unhex(c))
			case c == ';':
				st = kExtPreName
			case c == ' ' || c == '\t':
				st = kExtBWS
			case c == '\r':
				st = kSizeLF
			default:
				return pos, ErrBadChunkSize
			}
		case kExtBWS:
			switch {
			case c == ';':
				st = kExtPreName
			case !isOWS(c):
				return pos, ErrBadChunkExt
			}
		case kExtPreName:
			switch {
			case class[c]&cToken != 0:
				st = kExtName
			case !isOWS(c):
				return pos, ErrBadChunkExt
			}
		case kExtName:
			switch {
			case class[c]&cToken != 0:
			case c == '=':
				st = kExtPreVal
			case c == ';':
				st = kExtPreName
			case isOWS(c):
				st = kExtNameBWS
			case c == '\r':
				st = kSizeLF
			default:
				return pos, ErrBadChunkExt
			}
		case kExtNameBWS:
			switch {
			case c == '=':
				st = kExtPreVal
			case c == ';':
				st = kExtPreName
			case !isOWS(c):
				return pos, ErrBadChunkExt
			}
		case kExtPreVal:
			switch {
			case c == '"':
				st = kExtQuoted
			case class[c]&cToken != 0:
				st = kExtToken
			case !isOWS(c):
				return pos, ErrBadChunkExt
			}
		case kExtToken:
			switch {
			case class[c]&cToken != 0:
			case c == ';':
				st = kExtPreName
			case isOWS(c):
				st = kExtBWS
			case c == '\r':
				st = kSizeLF
			default:
				return pos, ErrBadChunkExt
			}
		case kExtQuoted:
			switch {
			case c == '"':
				st = kExtEnd
			case c == '\\':
				st = kExtQPair
			case class[c]&cQdtext == 0:
				return pos, ErrBadChunkExt
			}
		case kExtQPair: // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
			if class[c]&cValue == 0 {
				return pos, ErrBadChunkExt
			}
			st = kExtQuoted
		case kExtEnd:
			switch {
			case c == ';':
				st = kExtPreName
			case isOWS(c):
				st = kExtBWS
			case c == '\r':
				st = kSizeLF
			default:
				return pos, ErrBadChunkExt
			}
		case kSizeLF:
			if c != '\n' {
				return pos, ErrBareCR
			}
			bd.line = 0
			if bd.size == 0 {
				st = kTrStart
			} else {
				bd.remaining = bd.size
				st = kData
			}
		case kDataCR:
			if c != '\r' {
				return pos, ErrBadChunkData // more data than the size said, or no CRLF
			}
			st = kDataLF
		case kDataLF:
			if c != '\n' {
				return pos, ErrBadChunkData
			}
			st = kSizeStart
		case kTrStart: // RFC 9112 §7.1.2: field lines as in a head
			switch {
			case class[c]&cToken != 0:
				if bd.trailers == bd.maxFields {
					return pos, ErrTrailersTooLarge
				}
				bd.trailers++
				st = kTrName
			case c == '\r':
				st = kEndLF
			case c == '\n':
				return pos, ErrBareLF
			default: // obs-fold, empty name, invalid byte
				return pos, ErrBadTrailer
			}
		case kTrName:
			switch {
			case class[c]&cToken != 0:
			case c == ':':
				st = kTrValue
			default: // whitespace before ":", CR, invalid byte
				return pos, ErrBadTrailer
			}
		case kTrValue:
			switch {
			case class[c]&cValue != 0:
			case c == '\r':
				st = kTrLF
			default:
				return pos, ErrBadTrailer
			}
		case kTrLF:
			if c != '\n' {
				return pos, ErrBareCR
			}
			st = kTrStart
		case kEndLF:
			if c != '\n' {
				return pos, ErrBareCR
			}
			bd.state, bd.done = st, true
			return pos + 1, nil
		}
		pos++
	}
	bd.state = st
	return pos, nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
