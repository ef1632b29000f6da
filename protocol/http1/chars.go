package http1

// Byte classes, one table lookup per byte on the hot path.
const (
	cToken  uint8 = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue                    // field-vchar, SP, HTAB, obs-text (RFC 9110 §5.5); also reason-phrase (RFC 9112 §4)
	cTarget                   // bytes allowed in a request-target (RFC 9112 §3.2, see below)
	cHex                      // HEXDIG
	cQdtext                   // qdtext (RFC 9110 §5.6.4)
	cHost                     // reg-name bytes but "%": unreserved / sub-delims (RFC 3986 §3.2.2)
	cDigit                    // DIGIT
)

// class maps a byte to its classes. A request-target accepts every visible
// US-ASCII byte except "#": control bytes, SP, DEL and bytes >= 0x80 are
// rejected (RFC 9112 §3.2, RFC 3986 §2), and "#" starts a fragment, which is
// not part of any request-target form. Bytes such as `"<>\^`{|}` are not
// allowed unencoded by RFC 3986 either, but clients send them in queries;
// they cannot change framing or routing, so they are tolerated and
// forwarded as received (the behaviour of HAProxy and nginx).
var class = buildClass()

func buildClass() (t [256]uint8) {
	const (
		tokenPunct = "!#$%&'*+-.^_`|~"
		unreserved = "-._~"
		subDelims  = "!$&'()*+,;="
	)
	in := func(c byte, set string) bool {
		for i := 0; i < len(set); i++ {
			if set[i] == c {
				return true
			}
		}
		return false
	}
	for i := 0; i < 256; i++ {
		c := byte(i)
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		digit := '0' <= c && c <= '9'
		var k uint8
		if alpha || digit || in(c, tokenPunct) {
			k |= cToken
		}
		if c == '\t' || c == ' ' || 0x21 <= c && c <= 0x7e || c >= 0x80 {
			k |= cValue
		}
		if 0x21 <= c && c <= 0x7e && c != '#' {
			k |= cTarget
		}
		if digit || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' {
			k |= cHex
		}
		if c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b || 0x5d <= c && c <= 0x7e || c >= 0x80 {
			k |= cQdtext
		}
		if alpha || digit || in(c, unreserved) || in(c, subDelims) {
			k |= cHost
		}
		if digit {
			k |= cDigit
		}
		t[i] = k
	}
	return t
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// EqualFold reports whether a and b are equal under ASCII case folding,
// the comparison HTTP uses for field names and most tokens (RFC 9110
// §5.1, §5.6.2). Bytes outside ASCII letters must match exactly.
func EqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] != b[i] && lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// isToken reports whether b is a non-empty token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return true
}

// listElem returns the bounds of the element of the comma-separated list v
// (RFC 9110 §5.6.1) that starts at i, trimmed of OWS, and the index just
// after the comma that ends it (len(v) for the last element).
func listElem(v []byte, i int) (start, end, next int) {
	for i < len(v) && isOWS(v[i]) {
		i++
	}
	start = i
	for i < len(v) && v[i] != ',' {
		i++
	}
	end = i
	for end > start && isOWS(v[end-1]) {
		end--
	}
	if i < len(v) {
		i++
	}
	return start, end, i
}

// parseAuthority checks uri-host [ ":" port ] (RFC 3986 §3.2.2, §3.2.3;
// RFC 9110 §7.2) and returns the index of the ":" before the port, or -1.
// userinfo ("@") is rejected (RFC 9110 §4.2.4), as are zone identifiers.
func parseAuthority(v []byte) (colon int, ok bool) {
	i := 0
	if len(v) > 0 && v[0] == '[' { // IP-literal
		i = 1
		for i < len(v) && v[i] != ']' {
			if class[v[i]]&cHost == 0 && v[i] != ':' {
				return -1, false
			}
			i++
		}
		if i == len(v) || i < 3 { // no "]", or fewer than 2 bytes inside
			return -1, false
		}
		i++
	} else { // reg-name or IPv4address
		for i < len(v) && v[i] != ':' {
			c := v[i]
			if c == '%' {
				if i+2 >= len(v) || class[v[i+1]]&cHex == 0 || class[v[i+2]]&cHex == 0 {
					return -1, false
				}
				i += 3
				continue
			}
			if class[c]&cHost == 0 {
				return -1, false
			}
			i++
		}
	}
	if i == len(v) {
		return -1, true
	}
	if v[i] != ':' {
		return -1, false
	}
	for _, c := range v[i+1:] {
		if class[c]&cDigit == 0 {
			return -1, false
		}
	}
	return i, true
}

// Word-at-a-time scanning for the long runs of a head (field values and
// request-targets): eight bytes are checked with a few integer operations
// and only a word that holds a byte needing a closer look (a control byte,
// DEL, obs-text, "#") is examined byte by byte with the class table.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasLess is non-zero if some byte of x is below n (n <= 128).
func hasLess(x uint64, n byte) uint64 { return (x - lsb*uint64(n)) & ^x & msb }

// hasByte is non-zero if some byte of x equals c.
func hasByte(x uint64, c byte) uint64 { y := x ^ lsb*uint64(c); return (y - lsb) & ^y & msb }

func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// scanValue returns the index of the first byte of b[pos:end] that cannot
// be in a field value (or reason-phrase), or end.
func scanValue(b []byte, pos, end int) int {
	for {
		for end-pos >= 8 {
			x := load64(b[pos:])
			if hasLess(x, 0x20)|x&msb|hasByte(x, 0x7f) != 0 {
				break
			}
			pos += 8
		}
		for stop := min(pos+8, end); pos < stop; pos++ {
			if class[b[pos]]&cValue == 0 {
				return pos
			}
		}
		if pos == end {
			return end
		}
	}
}

// scanTarget is scanValue for request-target bytes.
func scanTarget(b []byte, pos, end int) int {
	for {
		for end-pos >= 8 {
			x := load64(b[pos:])
			if hasLess(x, 0x21)|x&msb|hasByte(x, 0x7f)|hasByte(x, '#') != 0 {
				break
			}
			pos += 8
		}
		for stop := min(pos+8, end); pos < stop; pos++ {
			if class[b[pos]]&cTarget == 0 {
				return pos
			}
		}
		if pos == end {
			return end
		}
	}
}
