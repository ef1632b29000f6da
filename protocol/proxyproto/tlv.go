package proxyproto

import (
	"encoding/binary"
	"fmt"
)

// TLV types registered by the specification (2.2). The names are the
// specification's own, so that they can be searched for in it.
const (
	PP2_TYPE_ALPN      = 0x01 // 2.2.1: the ALPN protocol in use, e.g. "h2"
	PP2_TYPE_AUTHORITY = 0x02 // 2.2.2: host name the client asked for (TLS SNI), UTF-8
	PP2_TYPE_CRC32C    = 0x03 // 2.2.3: CRC32c of the header, verified by Parse
	PP2_TYPE_NOOP      = 0x04 // 2.2.4: padding, to be ignored
	PP2_TYPE_UNIQUE_ID = 0x05 // 2.2.5: opaque connection ID, up to 128 bytes
	PP2_TYPE_SSL       = 0x20 // 2.2.6: TLS details, see SSL
	PP2_TYPE_NETNS     = 0x30 // 2.2.7: network namespace name, US-ASCII

	// Sub-types inside a PP2_TYPE_SSL value (2.2.6).
	PP2_SUBTYPE_SSL_VERSION = 0x21 // TLS version, e.g. "TLSv1.3"
	PP2_SUBTYPE_SSL_CN      = 0x22 // client certificate's Common Name
	PP2_SUBTYPE_SSL_CIPHER  = 0x23 // cipher name, e.g. "ECDHE-RSA-AES128-GCM-SHA256"
	PP2_SUBTYPE_SSL_SIG_ALG = 0x24 // signature algorithm of the frontend certificate
	PP2_SUBTYPE_SSL_KEY_ALG = 0x25 // key algorithm of the frontend certificate

	// Reserved ranges (2.2.8): application-specific, experimental, and
	// future use. Parse passes them through like any unknown type.
	PP2_TYPE_MIN_CUSTOM     = 0xE0
	PP2_TYPE_MAX_CUSTOM     = 0xEF
	PP2_TYPE_MIN_EXPERIMENT = 0xF0
	PP2_TYPE_MAX_EXPERIMENT = 0xF7
	PP2_TYPE_MIN_FUTURE     = 0xF8
	PP2_TYPE_MAX_FUTURE     = 0xFF
)

// Bits of SSL.Client (2.2.6).
const (
	PP2_CLIENT_SSL       = 0x01 // the client connected over TLS
	PP2_CLIENT_CERT_CONN = 0x02 // it sent a certificate on this connection
	PP2_CLIENT_CERT_SESS = 0x04 // it sent one at least once in this TLS session
)

// MaxUniqueIDLen is the largest PP2_TYPE_UNIQUE_ID value (2.2.5); Parse
// rejects longer ones.
const MaxUniqueIDLen = 128

// sslFixedLen is the client byte and the verify word that open a
// PP2_TYPE_SSL value (2.2.6, struct pp2_tlv_ssl).
const sslFixedLen = 1 + 4

// SSL is the decoded value of a PP2_TYPE_SSL TLV (2.2.6): what the proxy
// knows about the client's TLS connection.
type SSL struct {
	// Client holds PP2_CLIENT_* bits.
	Client uint8
	// Verify is zero if the client presented a certificate and it was
	// verified, non-zero otherwise. Big-endian on the wire.
	Verify uint32
	// TLVs are the sub-TLVs (PP2_SUBTYPE_SSL_*) in wire order. After
	// ParseSSL their values alias the parsed value.
	TLVs []TLV
}

// ParseSSL decodes the value of a PP2_TYPE_SSL TLV into s, reusing
// s.TLVs[:0]. Parse has already checked the structure of every SSL TLV it
// returns, so this only fails on values from elsewhere.
func ParseSSL(s *SSL, value []byte) error {
	s.TLVs = s.TLVs[:0]
	return walkSSL(value, s)
}

// walkSSL checks an SSL value: the fixed part, then sub-TLVs that exactly
// fill the rest, as for the top level (2.2.6: "The total length of the
// pp2_tlv_ssl TLV will reflect this"). With s non-nil it also decodes.
func walkSSL(v []byte, s *SSL) error {
	if len(v) < sslFixedLen {
		return invalidf("v2: SSL TLV of %d bytes, need at least %d", len(v), sslFixedLen)
	}
	if s != nil {
		s.Client = v[0]
		s.Verify = binary.BigEndian.Uint32(v[1:5])
	}
	for off := sslFixedLen; off < len(v); {
		if len(v)-off < 3 {
			return invalidf("v2: truncated SSL sub-TLV: %d bytes left", len(v)-off)
		}
		n := int(binary.BigEndian.Uint16(v[off+1 : off+3]))
		start := off + 3
		if n > len(v)-start {
			return invalidf("v2: SSL sub-TLV 0x%02x of %d bytes overruns its TLV", v[off], n)
		}
		if s != nil {
			s.TLVs = append(s.TLVs, TLV{Type: v[off], Value: v[start : start+n : start+n]})
		}
		off = start + n
	}
	return nil
}

// Lookup returns the value of the first sub-TLV of type typ, if any.
func (s *SSL) Lookup(typ uint8) ([]byte, bool) {
	return lookup(s.TLVs, typ)
}

// AppendValue appends the encoded SSL value to dst, for use as the Value
// of a TLV{Type: PP2_TYPE_SSL} in a header to send.
// On error dst is returned unchanged.
func (s *SSL) AppendValue(dst []byte) ([]byte, error) {
	for _, t := range s.TLVs {
		if len(t.Value) > 0xFFFF {
			return dst, fmt.Errorf("%w: v2: SSL sub-TLV 0x%02x of %d bytes", ErrTooLong, t.Type, len(t.Value))
		}
	}
	dst = append(dst, s.Client)
	dst = binary.BigEndian.AppendUint32(dst, s.Verify)
	for _, t := range s.TLVs {
		dst = append(dst, t.Type, byte(len(t.Value)>>8), byte(len(t.Value)))
		dst = append(dst, t.Value...)
	}
	return dst, nil
}
