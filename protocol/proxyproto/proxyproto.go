package proxyproto

import (
	"errors"
	"net/netip"
)

// Version is the PROXY protocol version a header was written in.
type Version uint8

const (
	V1 Version = 1 // 2.1 Human-readable header format
	V2 Version = 2 // 2.2 Binary header format
)

// String names the version as "v1" or "v2".
func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return "v?"
}

// Command says whether a header describes a relayed connection. The values
// are the low nibble of the 13th byte of a v2 header (2.2).
type Command uint8

const (
	// Local: the connection was opened by the proxy itself (a health
	// check). The receiver uses the real endpoints of the socket. A v1
	// "PROXY UNKNOWN" line also parses as Local: its meaning for the
	// receiver is the same (2.1: "use the real connection's parameters").
	Local Command = 0x0
	// Proxy: the connection was relayed on behalf of a client and the
	// header carries the client's original endpoints.
	Proxy Command = 0x1
)

// String names the command as the specification does.
func (c Command) String() string {
	switch c {
	case Local:
		return "LOCAL"
	case Proxy:
		return "PROXY"
	}
	return "COMMAND?"
}

// Transport is the address family and transport protocol of the relayed
// connection. Its values are the 14th byte of a v2 header (2.2: "In
// practice, the following protocol bytes are expected"), so that encoding
// and decoding are a plain byte copy. Version 1 can only express TCP4,
// TCP6 and UNKNOWN (reported as Unspec).
type Transport uint8

const (
	Unspec     Transport = 0x00 // AF_UNSPEC: unknown or unsupported; addresses ignored
	TCP4       Transport = 0x11 // TCP over IPv4, 12 address bytes
	UDP4       Transport = 0x12 // UDP over IPv4, 12 address bytes
	TCP6       Transport = 0x21 // TCP over IPv6, 36 address bytes
	UDP6       Transport = 0x22 // UDP over IPv6, 36 address bytes
	UnixStream Transport = 0x31 // SOCK_STREAM over AF_UNIX, 216 address bytes
	UnixDgram  Transport = 0x32 // SOCK_DGRAM over AF_UNIX, 216 address bytes
)

// Address block sizes (2.2, "union proxy_addr").
const (
	addrLenInet  = 4 + 4 + 2 + 2
	addrLenInet6 = 16 + 16 + 2 + 2
	addrLenUnix  = 108 + 108

	// UnixAddrLen is the size of each AF_UNIX address field in a v2
	// header: the sun_path of struct sockaddr_un.
	UnixAddrLen = 108
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case Unspec:
		return "UNSPEC"
	case TCP4:
		return "TCP4"
	case UDP4:
		return "UDP4"
	case TCP6:
		return "TCP6"
	case UDP6:
		return "UDP6"
	case UnixStream:
		return "UNIX_STREAM"
	case UnixDgram:
		return "UNIX_DGRAM"
	}
	return "TRANSPORT?"
}

// addrLen is the size of the v2 address block for t, or -1 if t is not one
// of the byte values 2.2 allows ("other values ... must be rejected as
// invalid by receivers").
func (t Transport) addrLen() int {
	switch t {
	case Unspec:
		return 0
	case TCP4, UDP4:
		return addrLenInet
	case TCP6, UDP6:
		return addrLenInet6
	case UnixStream, UnixDgram:
		return addrLenUnix
	}
	return -1
}

// TLV is one Type-Length-Value vector of a v2 header (2.2). After a parse,
// Value aliases the caller's buffer (with its capacity clipped, so an
// append to it cannot overwrite the bytes that follow): copy it to keep it
// beyond the buffer's reuse.
type TLV struct {
	Type  uint8
	Value []byte
}

// Header is one decoded PROXY protocol header.
type Header struct {
	// Version is the format the header was parsed from. The Append
	// methods ignore it: the method chosen is the version written.
	Version Version

	// Command is Proxy for a relayed connection, Local for a connection
	// the proxy opened itself (v2 LOCAL, v1 UNKNOWN).
	Command Command

	// Transport is the family and protocol of the relayed connection.
	// It is Unspec for Local headers: 2.2 says the receiver must discard
	// the protocol block "including the family which is ignored".
	Transport Transport

	// Source and Destination are the original client and the address it
	// connected to. They are the zero (invalid) AddrPort when the header
	// carries no IP addresses: Local, Unspec (v1 UNKNOWN) and Unix.
	// IPv6 addresses never carry a zone: the protocol has no field for
	// one.
	Source      netip.AddrPort
	Destination netip.AddrPort

	// SourceUnix and DestinationUnix are the two 108-byte AF_UNIX
	// address fields of a v2 UnixStream or UnixDgram header, exactly as
	// received (NUL padding included, since an abstract socket name
	// starts with a NUL and may contain more). Parsed values alias the
	// buffer. When encoding, shorter values are padded with NULs.
	SourceUnix      []byte
	DestinationUnix []byte

	// TLVs are the v2 Type-Length-Value vectors in wire order (2.2),
	// NOOP and unknown types included so a re-encoded header keeps them.
	// Always empty for v1.
	TLVs []TLV
}

// Lookup returns the value of the first TLV of type typ, if any. TLV
// types are in the PP2_TYPE_* constants.
func (h *Header) Lookup(typ uint8) ([]byte, bool) {
	return lookup(h.TLVs, typ)
}

func lookup(tlvs []TLV, typ uint8) ([]byte, bool) {
	for i := range tlvs {
		if tlvs[i].Type == typ {
			return tlvs[i].Value, true
		}
	}
	return nil, false
}

// Limits.
const (
	// MaxV1Len is the longest v1 line, CRLF included (2.1: "worst case
	// ... => 107 chars"). A receiver that has not seen CRLF by then
	// declares the line invalid.
	MaxV1Len = 107

	// V2HeaderLen is the fixed part of a v2 header: signature, version
	// and command, family and protocol, length (2.2, struct proxy_hdr_v2).
	V2HeaderLen = 16

	// MaxV2Limit is the largest v2 header the format can express: the
	// length field is 16 bits.
	MaxV2Limit = V2HeaderLen + 0xFFFF

	// DefaultMaxV2Len is the v2 size limit used when
	// ParseOptions.MaxV2Len is zero. It is far above what real senders
	// emit (a TCP6 header with ALPN, SNI and SSL details is a few hundred
	// bytes) and keeps a hostile peer from making a session buffer 64 KiB
	// before anything is checked.
	DefaultMaxV2Len = 4096
)

// Errors. ErrIncomplete and ErrNotProxy are returned bare, so testing for
// them with == or errors.Is costs nothing on the hot path; ErrInvalid and
// ErrTooLong are wrapped with the reason (test them with errors.Is).
var (
	// ErrIncomplete: the bytes so far are a valid prefix of a header;
	// call Parse again when more have arrived.
	ErrIncomplete = errors.New("proxyproto: incomplete header")

	// ErrNotProxy: the bytes cannot start a PROXY header: they begin
	// neither with "PROXY " nor with the v2 signature (or with the one
	// of a version disabled in ParseOptions). Decided on the first byte
	// that differs.
	ErrNotProxy = errors.New("proxyproto: not a PROXY protocol header")

	// ErrInvalid: the bytes start a PROXY header but break the
	// specification. The session must drop the connection (2.1: "Any
	// sequence which does not exactly match the protocol must be
	// discarded"). Also returned by the Append methods for a Header
	// they cannot encode.
	ErrInvalid = errors.New("proxyproto: invalid header")

	// ErrTooLong: a v1 line without CRLF in its first 107 bytes, or a v2
	// header whose declared length exceeds ParseOptions.MaxV2Len (or, when
	// encoding, the 16-bit length field).
	ErrTooLong = errors.New("proxyproto: header too long")
)

// ParseOptions tunes Parse. The zero value accepts both versions with the
// default v2 size limit.
type ParseOptions struct {
	// MaxV2Len bounds the total size of a v2 header (16 fixed bytes,
	// addresses and TLVs). Zero or negative means DefaultMaxV2Len; values
	// above MaxV2Limit are clamped to it. The check is made as soon as
	// the 16 fixed bytes are in, before the rest is buffered.
	MaxV2Len int

	// DisableV1 rejects v1 headers as ErrNotProxy (the "PROXY " prefix
	// then starts no accepted header). Use it when the peer is known to
	// send v2 only, so a stray "P" fails on the first byte.
	DisableV1 bool

	// DisableV2 rejects v2 headers as ErrNotProxy.
	DisableV2 bool
}

func (o *ParseOptions) maxV2() int {
	switch m := o.MaxV2Len; {
	case m <= 0:
		return DefaultMaxV2Len
	case m > MaxV2Limit:
		return MaxV2Limit
	default:
		return m
	}
}

// Parse looks for one PROXY header, v1 or v2, at the start of b. On success
// it returns the header and the number of bytes it used: b[:n] is the raw
// header and b[n:] is payload, which Parse never reads. Otherwise it
// returns ErrIncomplete, ErrNotProxy, or an error wrapping ErrInvalid or
// ErrTooLong, with n = 0.
//
// The returned TLVs and Unix addresses alias b. Parse allocates only the
// TLV slice; use ParseInto on the hot path.
func Parse(b []byte, opts ParseOptions) (Header, int, error) {
	var h Header
	n, err := ParseInto(&h, b, opts)
	if err != nil {
		return Header{}, 0, err
	}
	return h, n, nil
}

// ParseInto is Parse writing into h, whose TLVs slice is reused (its
// contents are replaced, from h.TLVs[:0]). A session that keeps one Header
// and parses into it allocates nothing once the slice has grown to the
// number of TLVs its peers send. On error h is reset, keeping only the
// TLVs capacity.
func ParseInto(h *Header, b []byte, opts ParseOptions) (int, error) {
	tlvs := h.TLVs[:0]
	*h = Header{TLVs: tlvs}
	n, err := parse(h, b, &opts)
	if err != nil {
		*h = Header{TLVs: h.TLVs[:0]}
		return 0, err
	}
	return n, nil
}

// parse dispatches on the first byte, which is enough to tell the
// versions apart: 'P' for v1, CR for v2 (2.2, "Identifying the protocol
// version is easy").
func parse(h *Header, b []byte, opts *ParseOptions) (int, error) {
	if len(b) == 0 {
		return 0, ErrIncomplete
	}
	switch b[0] {
	case v1Prefix[0]:
		if !opts.DisableV1 {
			return parseV1(h, b)
		}
	case v2Signature[0]:
		if !opts.DisableV2 {
			return parseV2(h, b, opts.maxV2())
		}
	}
	return 0, ErrNotProxy
}

// NewTCP returns the header a proxy sends ahead of a TCP connection it
// relays (the "send" mode): src is the client's address (the peer of the
// accepted socket), dst the address the client connected to (its local
// address).
//
// The family follows the addresses. An IPv4-mapped IPv6 address
// (::ffff:a.b.c.d, what a dual-stack listener reports for an IPv4
// client) is unmapped first, so an IPv4 client is announced as TCP4. If
// one address is IPv4 and the other IPv6, both are sent as IPv6, the
// IPv4 one in its mapped form: both formats need one family for the pair.
// Zones are dropped, as the protocol has no field for them. If either
// address is invalid (say, the listener is a Unix socket) the header is a
// Proxy command with Unspec transport, which encodes as "PROXY UNKNOWN"
// in v1 and as family UNSPEC in v2: 2.1 and 2.2 both say so for
// connections whose addresses cannot be expressed.
func NewTCP(src, dst netip.AddrPort) Header {
	s := src.Addr().Unmap().WithZone("")
	d := dst.Addr().Unmap().WithZone("")
	if !s.IsValid() || !d.IsValid() {
		return Header{Command: Proxy, Transport: Unspec}
	}
	t := TCP4
	if s.Is4() != d.Is4() {
		s = netip.AddrFrom16(s.As16())
		d = netip.AddrFrom16(d.As16())
		t = TCP6
	} else if s.Is6() {
		t = TCP6
	}
	return Header{
		Command:     Proxy,
		Transport:   t,
		Source:      netip.AddrPortFrom(s, src.Port()),
		Destination: netip.AddrPortFrom(d, dst.Port()),
	}
}
