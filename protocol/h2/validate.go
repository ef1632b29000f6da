package h2

// HTTP message validation (RFC 9113 §8.2, §8.3). The checks a decoded
// field list must pass before it becomes a request, a response or a
// trailer section. A list that fails is malformed (RFC 9113 §8.1.1): a
// stream error of type PROTOCOL_ERROR. The StreamErrors returned here
// have StreamID 0: the connection sets it. They are built once, so
// validation never allocates.

func malformed(reason string) error {
	return StreamError{Code: ErrCodeProtocol, Reason: reason}
}

var (
	errEmptyName        = malformed("empty field name")
	errNameChar         = malformed("field name with an uppercase or invalid character")
	errValueChar        = malformed("field value with NUL, CR or LF")
	errValueSpace       = malformed("field value with leading or trailing whitespace")
	errConnSpecific     = malformed("connection-specific field")
	errTE               = malformed("te field other than \"trailers\"")
	errPseudoAfter      = malformed("pseudo-header field after a regular field")
	errPseudoUnknown    = malformed("undefined pseudo-header field")
	errPseudoDup        = malformed("duplicate pseudo-header field")
	errPseudoInTrailers = malformed("pseudo-header field in trailers")
	errNoMethod         = malformed("missing :method")
	errMethod           = malformed("invalid :method")
	errNoScheme         = malformed("missing :scheme")
	errScheme           = malformed("invalid :scheme")
	errNoPath           = malformed("missing :path")
	errEmptyPath        = malformed("empty :path")
	errPath             = malformed("invalid :path")
	errNoAuthority      = malformed("CONNECT without :authority")
	errAuthority        = malformed("invalid :authority")
	errConnectExtra     = malformed("CONNECT with :scheme or :path")
	errProtocol         = malformed(":protocol without CONNECT")
	errHostMismatch     = malformed("host differs from :authority")
	errNoStatus         = malformed("missing :status")
	errStatus           = malformed("invalid :status")
)

const (
	pMethod = 1 << iota
	pScheme
	pAuthority
	pPath
	pProtocol
	pStatus
)

func pseudoBit(name string) int {
	switch name {
	case ":method":
		return pMethod
	case ":scheme":
		return pScheme
	case ":authority":
		return pAuthority
	case ":path":
		return pPath
	case ":protocol":
		return pProtocol
	case ":status":
		return pStatus
	}
	return 0
}

// tchar for field names: RFC 9110 §5.6.2 token characters, lowercase only
// (RFC 9113 §8.2.1 forbids uppercase; the rest of its forbidden ranges are
// outside tchar too).
var nameChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

// tokenChar is nameChar with uppercase, for :method.
var tokenChar = func() (t [256]bool) {
	t = nameChar
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	return
}()

func checkValue(v string) error {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case 0, '\r', '\n':
			return errValueChar
		}
	}
	if n := len(v); n > 0 && (isWS(v[0]) || isWS(v[n-1])) {
		return errValueSpace
	}
	return nil
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

// checkRegular checks a regular (not pseudo) field line.
func checkRegular(f *HeaderField) error {
	if len(f.Name) == 0 {
		return errEmptyName
	}
	for i := 0; i < len(f.Name); i++ {
		if !nameChar[f.Name[i]] {
			return errNameChar
		}
	}
	if err := checkValue(f.Value); err != nil {
		return err
	}
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return errConnSpecific
	case "te":
		if !equalFold(f.Value, "trailers") {
			return errTE
		}
	}
	return nil
}

// equalFold compares ASCII strings case-insensitively.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// visible reports whether s is non-empty visible US-ASCII (0x21-0x7e)
// without any byte of except.
func visible(s, except string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f {
			return false
		}
		for j := 0; j < len(except); j++ {
			if c == except[j] {
				return false
			}
		}
	}
	return true
}

func validScheme(s string) bool {
	// RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		switch {
		case 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= s[i] && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.'):
		default:
			return false
		}
	}
	return true
}

// ValidateRequest checks a request's field list (RFC 9113 §8.2, §8.3.1,
// §8.5; RFC 8441 §4 for extended CONNECT):
//
//   - field names are lowercase tokens; values hold no NUL, CR or LF and
//     neither start nor end with SP or HTAB;
//   - no connection-specific field (connection, keep-alive,
//     proxy-connection, transfer-encoding, upgrade); te only as
//     "trailers";
//   - pseudo-header fields come first, each at most once, and are among
//     :method, :scheme, :authority, :path and :protocol;
//   - :method is a token. CONNECT has :authority and neither :scheme nor
//     :path, unless :protocol is present (extended CONNECT), which needs
//     all of them; :protocol with another method is malformed. Other
//     methods need :scheme and a non-empty :path;
//   - for http and https, :path is origin-form ("/...") or "*" for
//     OPTIONS, and :authority has no userinfo. :path and :authority are
//     visible US-ASCII (no fragment in :path), so that the request can be
//     written as HTTP/1.1 without reinterpretation;
//   - a host field, if :authority is present too, names the same
//     authority (compared case-insensitively).
func ValidateRequest(fields []HeaderField) error {
	var seen int
	var method, scheme, authority, path string
	regular := false
	hostIdx := -1
	for i := range fields {
		f := &fields[i]
		if f.IsPseudo() {
			if regular {
				return errPseudoAfter
			}
			bit := pseudoBit(f.Name)
			if bit == 0 || bit == pStatus {
				return errPseudoUnknown
			}
			if seen&bit != 0 {
				return errPseudoDup
			}
			seen |= bit
			if err := checkValue(f.Value); err != nil {
				return err
			}
			switch bit {
			case pMethod:
				method = f.Value
			case pScheme:
				scheme = f.Value
			case pAuthority:
				authority = f.Value
			case pPath:
				path = f.Value
			}
			continue
		}
		regular = true
		if err := checkRegular(f); err != nil {
			return err
		}
		if f.Name == "host" && hostIdx < 0 {
			hostIdx = i
		}
	}

	if seen&pMethod == 0 {
		return errNoMethod
	}
	if len(method) == 0 {
		return errMethod
	}
	for i := 0; i < len(method); i++ {
		if !tokenChar[method[i]] {
			return errMethod
		}
	}
	if seen&pAuthority != 0 && !visible(authority, "") {
		return errAuthority
	}
	if method == "CONNECT" && seen&pProtocol == 0 {
		if seen&(pScheme|pPath) != 0 {
			return errConnectExtra
		}
		if seen&pAuthority == 0 {
			return errNoAuthority
		}
	} else {
		if seen&pProtocol != 0 {
			if method != "CONNECT" {
				return errProtocol
			}
			if seen&pAuthority == 0 {
				return errNoAuthority
			}
		}
		if seen&pScheme == 0 {
			return errNoScheme
		}
		if !validScheme(scheme) {
			return errScheme
		}
		if seen&pPath == 0 {
			return errNoPath
		}
		if len(path) == 0 {
			return errEmptyPath
		}
		if !visible(path, "#") {
			return errPath
		}
		if equalFold(scheme, "http") || equalFold(scheme, "https") {
			if path[0] != '/' && (path != "*" || method != "OPTIONS") {
				return errPath
			}
			for i := 0; i < len(authority); i++ {
				if authority[i] == '@' {
					return errAuthority
				}
			}
		}
	}
	if hostIdx >= 0 && seen&pAuthority != 0 {
		for i := hostIdx; i < len(fields); i++ {
			if fields[i].Name == "host" && !equalFold(fields[i].Value, authority) {
				return errHostMismatch
			}
		}
	}
	return nil
}

// ValidateResponse checks a response's field list (RFC 9113 §8.2,
// §8.3.2): the field rules of ValidateRequest, and exactly one
// pseudo-header field, :status, first, with three digits in 100..599
// other than 101 (HTTP/2 has no Switching Protocols, RFC 9113 §8.6).
func ValidateResponse(fields []HeaderField) error {
	var status string
	var seen int
	regular := false
	for i := range fields {
		f := &fields[i]
		if f.IsPseudo() {
			if regular {
				return errPseudoAfter
			}
			if f.Name != ":status" {
				return errPseudoUnknown
			}
			if seen != 0 {
				return errPseudoDup
			}
			seen = pStatus
			status = f.Value
			continue
		}
		regular = true
		if err := checkRegular(f); err != nil {
			return err
		}
	}
	if seen == 0 {
		return errNoStatus
	}
	if len(status) != 3 || status[0] < '1' || status[0] > '5' ||
		status[1] < '0' || status[1] > '9' || status[2] < '0' || status[2] > '9' ||
		status == "101" {
		return errStatus
	}
	return nil
}

// ValidateTrailers checks a trailer section (RFC 9113 §8.1): the field
// rules of ValidateRequest and no pseudo-header field.
func ValidateTrailers(fields []HeaderField) error {
	for i := range fields {
		f := &fields[i]
		if f.IsPseudo() {
			return errPseudoInTrailers
		}
		if err := checkRegular(f); err != nil {
			return err
		}
	}
	return nil
}
