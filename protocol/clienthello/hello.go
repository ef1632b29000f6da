package clienthello

// Hello is what a router needs from a ClientHello.
type Hello struct {
	// Version is legacy_version (RFC 8446 §4.1.2): 0x0303 for TLS 1.2
	// and 1.3 clients alike, which announce 1.3 in SupportedVersions.
	Version uint16

	// ServerName is the host_name of the server_name extension (RFC 6066
	// §3), lowercased (ASCII) and without a trailing dot, so it can be
	// compared with ==. It is empty if the extension is absent or names
	// no host_name: clients send no SNI when connecting to an IP address.
	//
	// The name is checked to be a plausible DNS name, once a single
	// trailing dot is removed: 1 to 253 bytes of letters, digits, '-' and
	// '_' in dot-separated labels of 1 to 63 bytes (RFC 1035 §2.3.4).
	// Anything else (a NUL, a space, a byte above 0x7f, "a..b") makes the
	// hello ErrMalformed. An IPv4 literal, which RFC 6066 §3 forbids but
	// some clients send, passes this check and is returned as is.
	//
	// When ECH is set, this is the outer hello's name: the ECH
	// configuration's public name, not the backend the client wants.
	ServerName string

	// ALPN is the protocol_name_list of the ALPN extension (RFC 7301
	// §3.1), in the client's order of preference; nil if absent. Names
	// are returned as sent: opaque bytes, not necessarily printable.
	ALPN []string

	// SupportedVersions is the list of the supported_versions extension
	// (RFC 8446 §4.2.1), in the client's order; nil if absent, in which
	// case Version is the highest version the client supports (RFC 5246
	// §7.4.1.2). GREASE values (RFC 8701 §2, 0x?a?a) are kept.
	SupportedVersions []uint16

	// ECH reports an encrypted_client_hello extension (type 0xfe0d,
	// draft-ietf-tls-esni §5): the real ClientHello, with the real server
	// name, is encrypted inside it and only the backend holding the ECH
	// keys can read it. Browsers send a GREASE ECH extension (same type,
	// random contents; draft-ietf-tls-esni §6.2) to servers that have no
	// ECH configuration, so ECH means that ServerName may be a public
	// name, not that it is one.
	ECH bool

	// Len is how many bytes at the start of the parsed input the records
	// carrying the ClientHello took: the bytes a router peeked and must
	// replay to the backend before relaying the rest. Bytes past Len are
	// the client's next records (early data, a ChangeCipherSpec, ...),
	// never read by Parse.
	Len int
}

// Extension types (IANA "TLS ExtensionType Values").
const (
	extServerName           = 0      // RFC 6066 §3
	extALPN                 = 16     // RFC 7301 §3.1
	extPreSharedKey         = 41     // RFC 8446 §4.2.11
	extSupportedVersions    = 43     // RFC 8446 §4.2.1
	extEncryptedClientHello = 0xfe0d // draft-ietf-tls-esni §5

	nameTypeHostName = 0 // RFC 6066 §3, NameType host_name

	// maxHostName: RFC 1035 §2.3.4 limits a name to 255 octets on the
	// wire, which is 253 bytes of dotted text; a label is 1 to 63.
	maxHostName = 253
	maxLabel    = 63

	// linearExts: up to this many extensions, duplicates are found by
	// comparing with those seen before; beyond, with a 65536-bit set.
	linearExts = 32
)

// parseBody parses a ClientHello body (RFC 8446 §4.1.2, RFC 5246
// §7.4.1.2): the handshake message without its 4-byte header.
func parseBody(body []byte) (Hello, error) {
	var h Hello
	r := reader(body)

	ver, ok := r.u16()
	if !ok {
		return Hello{}, malformed("no legacy_version")
	}
	if ver>>8 != 3 {
		return Hello{}, malformed("legacy_version 0x%04x", ver)
	}
	h.Version = ver
	if !r.skip(32) {
		return Hello{}, malformed("random truncated")
	}
	// legacy_session_id<0..32> (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
	if sid, ok := r.bytes8(); !ok || len(sid) > 32 {
		return Hello{}, malformed("bad legacy_session_id")
	}
	// cipher_suites<2..2^16-2>, two bytes each.
	if cs, ok := r.bytes16(); !ok || len(cs) < 2 || len(cs)%2 != 0 {
		return Hello{}, malformed("bad cipher_suites")
	}
	// legacy_compression_methods<1..2^8-1>.
	if cm, ok := r.bytes8(); !ok || len(cm) < 1 {
		return Hello{}, malformed("bad compression_methods")
	}
	// RFC 5246 §7.4.1.2: a TLS 1.2 hello may end here, without an
	// extensions block. If there is one, it fills the rest exactly.
	if len(r) == 0 {
		return h, nil
	}
	exts, ok := r.bytes16()
	if !ok {
		return Hello{}, malformed("extensions block overflows the ClientHello")
	}
	if len(r) != 0 {
		return Hello{}, malformed("%d bytes after the extensions", len(r))
	}

	var seen [linearExts]uint16
	count := 0
	rest := exts
	for len(rest) > 0 {
		if len(rest) < 4 {
			return Hello{}, malformed("extension header truncated")
		}
		typ, _ := rest.u16()
		data, ok := rest.bytes16()
		if !ok {
			return Hello{}, malformed("extension 0x%04x overflows the extensions block", typ)
		}
		// RFC 8446 §4.2: "There MUST NOT be more than one extension of
		// the same type in a given extension block." Sets beyond
		// linearExts are checked at the end.
		if count < linearExts {
			for _, t := range seen[:count] {
				if t == typ {
					return Hello{}, malformed("duplicate extension 0x%04x", typ)
				}
			}
			seen[count] = typ
		}
		count++

		var err error
		switch typ {
		case extServerName:
			h.ServerName, err = parseServerName(data)
		case extALPN:
			h.ALPN, err = parseALPN(data)
		case extSupportedVersions:
			h.SupportedVersions, err = parseSupportedVersions(data)
		case extEncryptedClientHello:
			h.ECH = true
		case extPreSharedKey:
			// RFC 8446 §4.2.11: it "MUST be the last extension in the
			// ClientHello"; servers fail the handshake otherwise.
			if len(rest) != 0 {
				err = malformed("pre_shared_key is not the last extension")
			}
		}
		if err != nil {
			return Hello{}, err
		}
	}
	if count > linearExts {
		if typ, dup := duplicateType(exts); dup {
			return Hello{}, malformed("duplicate extension 0x%04x", typ)
		}
	}
	return h, nil
}

// duplicateType looks for two extensions of one type in a block that
// parseBody has walked. It is a function of its own so that the 8 KiB set
// is on the stack only for the rare hello with many extensions.
//
//go:noinline
func duplicateType(exts reader) (uint16, bool) {
	var set [1 << 16 / 64]uint64
	for len(exts) > 0 {
		typ, _ := exts.u16()
		exts.bytes16()
		if set[typ/64]&(1<<(typ%64)) != 0 {
			return typ, true
		}
		set[typ/64] |= 1 << (typ % 64)
	}
	return 0, false
}

// parseServerName parses server_name extension data, a ServerNameList
// (RFC 6066 §3), and returns its host_name, checked and lowercased.
func parseServerName(data reader) (string, error) {
	// ServerName server_name_list<1..2^16-1>, filling the extension.
	list, ok := data.bytes16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", malformed("bad server_name list")
	}
	var types [256 / 64]uint64
	var host []byte
	for len(list) > 0 {
		// Every NameType so far is a uint16-prefixed opaque, as
		// host_name is; this reads unknown types the same way.
		typ, ok := list.u8()
		if !ok {
			return "", malformed("server_name entry truncated")
		}
		name, ok := list.bytes16()
		if !ok {
			return "", malformed("server_name entry overflows its list")
		}
		// RFC 6066 §3: "The ServerNameList MUST NOT contain more than one
		// name of the same name_type."
		if types[typ/64]&(1<<(typ%64)) != 0 {
			return "", malformed("two server names of type %d", typ)
		}
		types[typ/64] |= 1 << (typ % 64)
		if typ == nameTypeHostName {
			// HostName is opaque<1..2^16-1>.
			if len(name) == 0 {
				return "", malformed("empty host_name")
			}
			host = name
		}
	}
	if host == nil {
		return "", nil
	}
	return hostName(host)
}

// hostName checks that raw is a plausible DNS name and returns it
// lowercased, without its trailing dot. RFC 6066 §3 says the name is sent
// "without a trailing dot"; one is tolerated and removed, so that the
// router sees the same name either way. Error texts do not quote the name:
// they end up in logs and the name is the client's.
func hostName(raw []byte) (string, error) {
	name := raw
	if name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if len(name) == 0 || len(name) > maxHostName {
		return "", malformed("host_name of %d bytes", len(raw))
	}
	var buf [maxHostName]byte
	label := 0
	for i, c := range name {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			label++
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
			label++
		case c == '.':
			if label == 0 {
				return "", malformed("empty label in host_name")
			}
			label = 0
		default:
			return "", malformed("byte 0x%02x in host_name", c)
		}
		if label > maxLabel {
			return "", malformed("label of more than %d bytes in host_name", maxLabel)
		}
		buf[i] = c
	}
	if label == 0 {
		return "", malformed("empty label in host_name")
	}
	return string(buf[:len(name)]), nil
}

// parseALPN parses application_layer_protocol_negotiation extension data
// (RFC 7301 §3.1).
func parseALPN(data reader) ([]string, error) {
	// ProtocolName protocol_name_list<2..2^16-1>, filling the extension.
	list, ok := data.bytes16()
	if !ok || len(data) != 0 || len(list) < 2 {
		return nil, malformed("bad ALPN list")
	}
	// Count first, so the slice is allocated once and to size.
	n := 0
	for r := list; len(r) > 0; n++ {
		// opaque ProtocolName<1..2^8-1>: "Empty strings MUST NOT be
		// included and byte strings MUST NOT be truncated."
		if p, ok := r.bytes8(); !ok || len(p) == 0 {
			return nil, malformed("bad ALPN protocol name")
		}
	}
	protos := make([]string, 0, n)
	for len(list) > 0 {
		p, _ := list.bytes8()
		protos = append(protos, protocolName(p))
	}
	return protos, nil
}

// protocolName returns p as a string, without allocating for the names
// that nearly every hello carries (IANA "TLS Application-Layer Protocol
// Negotiation (ALPN) Protocol IDs").
func protocolName(p []byte) string {
	switch string(p) {
	case "h2":
		return "h2"
	case "http/1.1":
		return "http/1.1"
	case "http/1.0":
		return "http/1.0"
	case "acme-tls/1": // RFC 8737, TLS-ALPN-01 challenges
		return "acme-tls/1"
	}
	return string(p)
}

// parseSupportedVersions parses supported_versions extension data as a
// ClientHello carries it (RFC 8446 §4.2.1): ProtocolVersion
// versions<2..254>.
func parseSupportedVersions(data reader) ([]uint16, error) {
	list, ok := data.bytes8()
	if !ok || len(data) != 0 || len(list) < 2 || len(list)%2 != 0 {
		return nil, malformed("bad supported_versions list")
	}
	vs := make([]uint16, len(list)/2)
	for i := range vs {
		vs[i], _ = list.u16()
	}
	return vs, nil
}

// reader consumes big-endian integers and length-prefixed vectors (RFC
// 8446 §3.4) from the front of a byte slice. Every method reports false,
// consuming nothing, when the slice is too short.
type reader []byte

func (r *reader) u8() (uint8, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *reader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

func (r *reader) bytes(n int) (reader, bool) {
	if len(*r) < n {
		return nil, false
	}
	v := (*r)[:n:n]
	*r = (*r)[n:]
	return v, true
}

// bytes8 reads a vector with a one-byte length, bytes16 one with a
// two-byte length.
func (r *reader) bytes8() (reader, bool) {
	if len(*r) < 1 {
		return nil, false
	}
	n := int((*r)[0])
	if len(*r) < 1+n {
		return nil, false
	}
	*r = (*r)[1:]
	return r.bytes(n)
}

func (r *reader) bytes16() (reader, bool) {
	if len(*r) < 2 {
		return nil, false
	}
	n := int((*r)[0])<<8 | int((*r)[1])
	if len(*r) < 2+n {
		return nil, false
	}
	*r = (*r)[2:]
	return r.bytes(n)
}
