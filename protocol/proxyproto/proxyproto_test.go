package proxyproto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test vectors are built with the helpers below, which concatenate
// bytes by the layout of 2.2 and never call the package's encoder, so a
// bug shared by AppendV2 and Parse cannot hide behind a round trip.

const sig = "\r\n\r\n\x00\r\nQUIT\n"

// v2 builds a v2 header: signature, ver/cmd, fam, length of the parts,
// then the parts.
func v2(verCmd, fam byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	b := append([]byte(sig), verCmd, fam, byte(len(body)>>8), byte(len(body)))
	return append(b, body...)
}

func tlvBytes(typ byte, v string) []byte {
	return append([]byte{typ, byte(len(v) >> 8), byte(len(v))}, v...)
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// addr4 and addr16 give an address's bytes; in 2.2 the ports come after
// both addresses.
func addr4(s string) []byte {
	a := netip.MustParseAddr(s).As4()
	return a[:]
}

func addr16(s string) []byte {
	a := netip.MustParseAddr(s).As16()
	return a[:]
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// withCRC fills the CRC32C value of b, which must be the last 4 bytes
// (the test headers put the CRC TLV last). Computed here with hash/crc32
// directly, not with the package's code.
func withCRC(b []byte) []byte {
	b = bytes.Clone(b)
	copy(b[len(b)-4:], []byte{0, 0, 0, 0})
	c := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[len(b)-4:], c)
	return b
}

func unixPath(s string) []byte {
	b := make([]byte, UnixAddrLen)
	copy(b, s)
	return b
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

type validCase struct {
	name string
	in   []byte
	want Header
}

var (
	uniqueID128 = strings.Repeat("u", 128)
	sslValue    = string([]byte{PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, 0, 0, 0}) +
		string(tlvBytes(PP2_SUBTYPE_SSL_VERSION, "TLSv1.3")) +
		string(tlvBytes(PP2_SUBTYPE_SSL_CN, "client.example"))
	worstUnknown = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
)

func validV1() []validCase {
	tcp := func(t Transport, src, dst string) Header {
		return Header{Version: V1, Command: Proxy, Transport: t, Source: ap(src), Destination: ap(dst)}
	}
	unknown := Header{Version: V1, Command: Local, Transport: Unspec}
	return []validCase{
		{"v1 spec example", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
			tcp(TCP4, "192.168.0.1:56324", "192.168.0.11:443")},
		{"v1 tcp4 longest", []byte("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
			tcp(TCP4, "255.255.255.255:65535", "255.255.255.255:65535")},
		{"v1 tcp4 zeros", []byte("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
			tcp(TCP4, "0.0.0.0:0", "0.0.0.0:0")},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n"),
			tcp(TCP6, "[2001:db8::1]:1234", "[2001:db8::2]:443")},
		{"v1 tcp6 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
			tcp(TCP6, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")},
		{"v1 tcp6 upper case", []byte("PROXY TCP6 2001:DB8::A 2001:db8::b 1 2\r\n"),
			tcp(TCP6, "[2001:db8::a]:1", "[2001:db8::b]:2")},
		{"v1 tcp6 v4-mapped", []byte("PROXY TCP6 ::ffff:192.0.2.1 ::1 80 8080\r\n"),
			tcp(TCP6, "[::ffff:192.0.2.1]:80", "[::1]:8080")},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), unknown},
		{"v1 unknown worst case 107", []byte(worstUnknown), unknown},
		{"v1 unknown with junk", []byte("PROXY UNKNOWN what\x00ever \x7f you like\r\n"), unknown},
	}
}

// katV2 is the v2 header HAProxy sent in a public capture (TCP4,
// 172.19.0.1:42578 -> 172.19.0.3:80), written out byte by byte.
var katV2 = unhex("0d0a0d0a 000d0a51 5549540a" + // signature
	"21" + // version 2, PROXY
	"11" + // AF_INET, STREAM
	"000c" + // 12 bytes follow
	"ac130001 ac130003" + // 172.19.0.1, 172.19.0.3
	"a652 0050") // 42578, 80

// katV2CRC: TCP4 192.0.2.1:12345 -> 198.51.100.2:443 with a CRC32C TLV
// whose value was computed once with an independent tool.
var katV2CRC = unhex("0d0a0d0a 000d0a51 5549540a 21 11 0013" +
	"c0000201 c6336402 3039 01bb" +
	"03 0004 c8ccd4b7")

func validV2() []validCase {
	return []validCase{
		{"v2 known answer tcp4", katV2, Header{Version: V2, Command: Proxy, Transport: TCP4,
			Source: ap("172.19.0.1:42578"), Destination: ap("172.19.0.3:80")}},
		{"v2 known answer crc32c", katV2CRC, Header{Version: V2, Command: Proxy, Transport: TCP4,
			Source: ap("192.0.2.1:12345"), Destination: ap("198.51.100.2:443"),
			TLVs: []TLV{{PP2_TYPE_CRC32C, unhex("c8ccd4b7")}}}},
		{"v2 tcp6 alpn authority", v2(0x21, 0x21, addr16("2001:db8::1"), addr16("2001:db8::2"), be16(5555), be16(443),
			tlvBytes(PP2_TYPE_ALPN, "h2"), tlvBytes(PP2_TYPE_AUTHORITY, "example.com")),
			Header{Version: V2, Command: Proxy, Transport: TCP6,
				Source: ap("[2001:db8::1]:5555"), Destination: ap("[2001:db8::2]:443"),
				TLVs: []TLV{{PP2_TYPE_ALPN, []byte("h2")}, {PP2_TYPE_AUTHORITY, []byte("example.com")}}}},
		{"v2 tcp4 alpn authority crc32c", withCRC(v2(0x21, 0x11, addr4("10.0.0.1"), addr4("10.0.0.2"), be16(1), be16(2),
			tlvBytes(PP2_TYPE_ALPN, "http/1.1"), tlvBytes(PP2_TYPE_AUTHORITY, "a.example"), tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00"))),
			Header{Version: V2, Command: Proxy, Transport: TCP4, Source: ap("10.0.0.1:1"), Destination: ap("10.0.0.2:2"),
				TLVs: []TLV{{PP2_TYPE_ALPN, []byte("http/1.1")}, {PP2_TYPE_AUTHORITY, []byte("a.example")}, {PP2_TYPE_CRC32C, nil}}}},
		{"v2 local health check", v2(0x20, 0x00), Header{Version: V2, Command: Local, Transport: Unspec}},
		{"v2 local with ignored tcp4 addresses", v2(0x20, 0x11, addr4("1.2.3.4"), addr4("5.6.7.8"), be16(1), be16(2),
			tlvBytes(PP2_TYPE_NOOP, "pad")),
			Header{Version: V2, Command: Local, Transport: Unspec, TLVs: []TLV{{PP2_TYPE_NOOP, []byte("pad")}}}},
		{"v2 local with tlvs and crc", withCRC(v2(0x20, 0x00, tlvBytes(PP2_TYPE_UNIQUE_ID, "id-1"), tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00"))),
			Header{Version: V2, Command: Local, Transport: Unspec,
				TLVs: []TLV{{PP2_TYPE_UNIQUE_ID, []byte("id-1")}, {PP2_TYPE_CRC32C, nil}}}},
		{"v2 udp4", v2(0x21, 0x12, addr4("192.0.2.7"), addr4("192.0.2.8"), be16(53), be16(5353)),
			Header{Version: V2, Command: Proxy, Transport: UDP4, Source: ap("192.0.2.7:53"), Destination: ap("192.0.2.8:5353")}},
		{"v2 udp6", v2(0x21, 0x22, addr16("::1"), addr16("fe80::1"), be16(0), be16(65535)),
			Header{Version: V2, Command: Proxy, Transport: UDP6, Source: ap("[::1]:0"), Destination: ap("[fe80::1]:65535")}},
		{"v2 tcp6 v4-mapped stays 16 bytes", v2(0x21, 0x21, addr16("::ffff:192.0.2.1"), addr16("::1"), be16(1), be16(2)),
			Header{Version: V2, Command: Proxy, Transport: TCP6, Source: ap("[::ffff:192.0.2.1]:1"), Destination: ap("[::1]:2")}},
		{"v2 unix stream", v2(0x21, 0x31, unixPath("/run/client.sock"), unixPath("\x00abstract")),
			Header{Version: V2, Command: Proxy, Transport: UnixStream,
				SourceUnix: unixPath("/run/client.sock"), DestinationUnix: unixPath("\x00abstract")}},
		{"v2 unix dgram", v2(0x21, 0x32, unixPath("/a"), unixPath("/b")),
			Header{Version: V2, Command: Proxy, Transport: UnixDgram, SourceUnix: unixPath("/a"), DestinationUnix: unixPath("/b")}},
		{"v2 proxy unspec", v2(0x21, 0x00, tlvBytes(PP2_TYPE_NOOP, "")),
			Header{Version: V2, Command: Proxy, Transport: Unspec, TLVs: []TLV{{PP2_TYPE_NOOP, []byte{}}}}},
		{"v2 every registered tlv", v2(0x21, 0x21, addr16("2001:db8::10"), addr16("2001:db8::20"), be16(40000), be16(443),
			tlvBytes(PP2_TYPE_ALPN, "h2"),
			tlvBytes(PP2_TYPE_AUTHORITY, "www.example.org"),
			tlvBytes(PP2_TYPE_NOOP, ""),
			tlvBytes(PP2_TYPE_UNIQUE_ID, uniqueID128),
			tlvBytes(PP2_TYPE_SSL, sslValue),
			tlvBytes(PP2_TYPE_NETNS, "blue"),
			tlvBytes(PP2_TYPE_MIN_CUSTOM, "app"),
			tlvBytes(PP2_TYPE_MAX_FUTURE, "x")),
			Header{Version: V2, Command: Proxy, Transport: TCP6,
				Source: ap("[2001:db8::10]:40000"), Destination: ap("[2001:db8::20]:443"),
				TLVs: []TLV{
					{PP2_TYPE_ALPN, []byte("h2")},
					{PP2_TYPE_AUTHORITY, []byte("www.example.org")},
					{PP2_TYPE_NOOP, []byte{}},
					{PP2_TYPE_UNIQUE_ID, []byte(uniqueID128)},
					{PP2_TYPE_SSL, []byte(sslValue)},
					{PP2_TYPE_NETNS, []byte("blue")},
					{PP2_TYPE_MIN_CUSTOM, []byte("app")},
					{PP2_TYPE_MAX_FUTURE, []byte("x")},
				}}},
	}
}

func validCases() []validCase { return append(validV1(), validV2()...) }

// fixCRCWant puts the CRC value found in the input into the expected
// header (the tables above leave it nil where withCRC computes it).
func fixCRCWant(c validCase) Header {
	want := c.want
	if len(want.TLVs) > 0 && want.TLVs[len(want.TLVs)-1].Type == PP2_TYPE_CRC32C {
		want.TLVs = append([]TLV(nil), want.TLVs...)
		want.TLVs[len(want.TLVs)-1].Value = c.in[len(c.in)-4:]
	}
	return want
}

func TestParseValid(t *testing.T) {
	for _, c := range validCases() {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := Parse(c.in, ParseOptions{})
			require.NoError(t, err)
			assert.Equal(t, len(c.in), n)
			assert.Equal(t, fixCRCWant(c), h)
		})
	}
}

func TestKnownAnswerV1(t *testing.T) {
	// 2.1's example, byte by byte.
	line := []byte{'P', 'R', 'O', 'X', 'Y', ' ', 'T', 'C', 'P', '4', ' ',
		'1', '9', '2', '.', '1', '6', '8', '.', '0', '.', '1', ' ',
		'1', '9', '2', '.', '1', '6', '8', '.', '0', '.', '1', '1', ' ',
		'5', '6', '3', '2', '4', ' ', '4', '4', '3', 0x0D, 0x0A}
	h := NewTCP(ap("192.168.0.1:56324"), ap("192.168.0.11:443"))
	out, err := h.AppendV1(nil)
	require.NoError(t, err)
	assert.Equal(t, line, out)

	got, n, err := Parse(line, ParseOptions{})
	require.NoError(t, err)
	assert.Equal(t, len(line), n)
	h.Version = V1
	assert.Equal(t, h, got)

	out, err = (&Header{Command: Local}).AppendV1(nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{'P', 'R', 'O', 'X', 'Y', ' ', 'U', 'N', 'K', 'N', 'O', 'W', 'N', 0x0D, 0x0A}, out)
}

func TestKnownAnswerV2(t *testing.T) {
	h := NewTCP(ap("172.19.0.1:42578"), ap("172.19.0.3:80"))
	out, err := h.AppendV2(nil)
	require.NoError(t, err)
	assert.Equal(t, katV2, out)

	h = NewTCP(ap("192.0.2.1:12345"), ap("198.51.100.2:443"))
	h.TLVs = []TLV{{Type: PP2_TYPE_CRC32C}}
	out, err = h.AppendV2(nil)
	require.NoError(t, err)
	assert.Equal(t, katV2CRC, out)

	// A LOCAL header is 16 bytes: 0x20, family UNSPEC, length 0.
	out, err = (&Header{Command: Local, Transport: TCP4}).AppendV2(nil)
	require.NoError(t, err)
	assert.Equal(t, unhex("0d0a0d0a000d0a515549540a 20 00 0000"), out)
}

// TestCRC32CVector pins the checksum to CRC32c (RFC 3720, B.4: 32 zero
// bytes give 0x8A9136AA), the one 2.2.3 names.
func TestCRC32CVector(t *testing.T) {
	assert.Equal(t, uint32(0x8A9136AA), crc32.Checksum(make([]byte, 32), castagnoli))
}

type invalidCase struct {
	name string
	in   []byte
	opts ParseOptions
	want error
}

func tcp4Body() [][]byte {
	return [][]byte{addr4("1.2.3.4"), addr4("5.6.7.8"), be16(1), be16(2)}
}

func invalidCases() []invalidCase {
	tcp4 := func(tlvs ...[]byte) []byte { return v2(0x21, 0x11, append(tcp4Body(), tlvs...)...) }
	crcBad := withCRC(tcp4(tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00")))
	crcBad[len(crcBad)-1] ^= 1
	crcFlipped := withCRC(tcp4(tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00")))
	crcFlipped[17] ^= 0x80 // a source address bit
	big := v2(0x21, 0x11, append(tcp4Body(), tlvBytes(PP2_TYPE_NOOP, strings.Repeat("\x00", 100)))...)

	return []invalidCase{
		// Not PROXY at all.
		{"http request", []byte("GET / HTTP/1.1\r\n\r\n"), ParseOptions{}, ErrNotProxy},
		{"tls client hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}, ParseOptions{}, ErrNotProxy},
		{"PROXY without space", []byte("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrNotProxy},
		{"lower case proxy", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrNotProxy},
		{"v2 signature last byte wrong", []byte(sig[:11] + "\x0b\x21\x11\x00\x00"), ParseOptions{}, ErrNotProxy},
		{"v1 disabled", []byte("PROXY UNKNOWN\r\n"), ParseOptions{DisableV1: true}, ErrNotProxy},
		{"v2 disabled", katV2, ParseOptions{DisableV2: true}, ErrNotProxy},

		// 2.1, v1.
		{"v1 double space after PROXY", []byte("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 unknown protocol", []byte("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 lower case protocol", []byte("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 UDP4 does not exist", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 empty protocol", []byte("PROXY \r\n"), ParseOptions{}, ErrInvalid},
		{"v1 UNKNOWNX", []byte("PROXY UNKNOWNX\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 TCP4 alone", []byte("PROXY TCP4\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv6 in TCP4", []byte("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv4 in TCP6", []byte("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv4 dst in TCP6", []byte("PROXY TCP6 ::1 1.2.3.4 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv6 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv6 too many groups", []byte("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 ipv6 two double colons", []byte("PROXY TCP6 1::2::3 ::1 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 octet leading zero", []byte("PROXY TCP4 192.168.01.1 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 octet 256", []byte("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 three octets", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 five octets", []byte("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 empty octet", []byte("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 port 65536", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 port leading zero", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 port plus sign", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +443 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 port minus sign", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 port hex", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 missing destination port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 extra field", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 trailing space", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), ParseOptions{}, ErrInvalid},
		{"v1 double space between fields", []byte("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 tab separator", []byte("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 bare LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET"), ParseOptions{}, ErrInvalid},
		{"v1 bare LF after UNKNOWN", []byte("PROXY UNKNOWN\n"), ParseOptions{}, ErrInvalid},
		{"v1 CR not followed by LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), ParseOptions{}, ErrInvalid},
		{"v1 CR CR LF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), ParseOptions{}, ErrInvalid},
		{"v1 no CRLF in 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("a", 93)), ParseOptions{}, ErrTooLong},
		{"v1 no CRLF in 106 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("a", 92)), ParseOptions{}, ErrTooLong},
		{"v1 CRLF at 107-108", []byte("PROXY UNKNOWN " + strings.Repeat("a", 92) + "\r\n"), ParseOptions{}, ErrTooLong},
		{"v1 tcp6 with dotted tails too long", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n"), ParseOptions{}, ErrTooLong},

		// 2.2, v2.
		{"v2 version 1", v2(0x11, 0x11, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 version 3", v2(0x31, 0x11, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 command 2", v2(0x22, 0x11, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 command 15", v2(0x2F, 0x11, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 family 4", v2(0x21, 0x41, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 protocol 3", v2(0x21, 0x13, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 inet with unspec protocol", v2(0x21, 0x10, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 unspec family with stream", v2(0x21, 0x01), ParseOptions{}, ErrInvalid},
		{"v2 local with unknown family", v2(0x20, 0x44), ParseOptions{}, ErrInvalid},
		{"v2 tcp4 address block 11", v2(0x21, 0x11, make([]byte, 11)), ParseOptions{}, ErrInvalid},
		{"v2 tcp6 address block 12", v2(0x21, 0x21, tcp4Body()...), ParseOptions{}, ErrInvalid},
		{"v2 unix address block 108", v2(0x21, 0x31, unixPath("/a")), ParseOptions{}, ErrInvalid},
		{"v2 proxy tcp4 length 0", v2(0x21, 0x11), ParseOptions{}, ErrInvalid},
		{"v2 local partial address block", v2(0x20, 0x11, make([]byte, 5)), ParseOptions{}, ErrInvalid},
		{"v2 truncated tlv header", tcp4([]byte{PP2_TYPE_NOOP, 0}), ParseOptions{}, ErrInvalid},
		{"v2 one stray byte", tcp4([]byte{PP2_TYPE_ALPN}), ParseOptions{}, ErrInvalid},
		{"v2 tlv value overruns", tcp4([]byte{PP2_TYPE_ALPN, 0, 10, 'h', '2'}), ParseOptions{}, ErrInvalid},
		{"v2 second tlv truncated", tcp4(tlvBytes(PP2_TYPE_ALPN, "h2"), []byte{PP2_TYPE_AUTHORITY, 0, 5, 'a'}), ParseOptions{}, ErrInvalid},
		{"v2 local tlv garbage", v2(0x20, 0x00, []byte{1, 2}), ParseOptions{}, ErrInvalid},
		{"v2 crc32c mismatch", crcBad, ParseOptions{}, ErrInvalid},
		{"v2 crc32c header altered", crcFlipped, ParseOptions{}, ErrInvalid},
		{"v2 crc32c of 3 bytes", tcp4(tlvBytes(PP2_TYPE_CRC32C, "abc")), ParseOptions{}, ErrInvalid},
		{"v2 two crc32c", withCRC(tcp4(tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00"), tlvBytes(PP2_TYPE_CRC32C, "\x00\x00\x00\x00"))), ParseOptions{}, ErrInvalid},
		{"v2 unique id of 129 bytes", tcp4(tlvBytes(PP2_TYPE_UNIQUE_ID, strings.Repeat("u", 129))), ParseOptions{}, ErrInvalid},
		{"v2 ssl tlv of 4 bytes", tcp4(tlvBytes(PP2_TYPE_SSL, "\x01\x00\x00\x00")), ParseOptions{}, ErrInvalid},
		{"v2 ssl sub-tlv overruns", tcp4(tlvBytes(PP2_TYPE_SSL, "\x01\x00\x00\x00\x00\x21\x00\x09TLS")), ParseOptions{}, ErrInvalid},
		{"v2 ssl sub-tlv truncated", tcp4(tlvBytes(PP2_TYPE_SSL, "\x01\x00\x00\x00\x00\x21")), ParseOptions{}, ErrInvalid},
		{"v2 length 65535 over default limit", []byte(sig + "\x21\x11\xff\xff"), ParseOptions{}, ErrTooLong},
		{"v2 over a custom limit", big, ParseOptions{MaxV2Len: len(big) - 1}, ErrTooLong},
	}
}

func TestParseInvalid(t *testing.T) {
	cases := invalidCases()
	require.GreaterOrEqual(t, len(cases), 30)
	seen := map[string]bool{}
	for _, c := range cases {
		require.False(t, seen[c.name], "duplicate case %q", c.name)
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			h, n, err := Parse(c.in, c.opts)
			require.ErrorIs(t, err, c.want)
			assert.Zero(t, n)
			assert.Equal(t, Header{}, h)
			for _, other := range []error{ErrIncomplete, ErrNotProxy, ErrInvalid, ErrTooLong} {
				if other != c.want {
					assert.NotErrorIs(t, err, other)
				}
			}
			if c.want == ErrInvalid || c.want == ErrTooLong {
				assert.NotEqual(t, c.want, err, "should carry a reason")
			}
		})
	}
}

// Every strict prefix of a valid header is ErrIncomplete: a session must
// keep reading, never reject, whatever the segmentation.
func TestEveryPrefixIncomplete(t *testing.T) {
	var h Header
	for _, c := range validCases() {
		for i := 0; i < len(c.in); i++ {
			n, err := ParseInto(&h, c.in[:i], ParseOptions{})
			if !assert.Equal(t, ErrIncomplete, err, "%s: prefix of %d bytes: %q", c.name, i, c.in[:i]) {
				break
			}
			assert.Zero(t, n)
		}
	}
}

// Parse never reads past the header: what follows is the caller's and
// comes back untouched, even when it looks like another header.
func TestPayloadPreserved(t *testing.T) {
	for _, payload := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01", "PROXY UNKNOWN\r\n", sig, "\n"} {
		for _, c := range validCases() {
			b := append(bytes.Clone(c.in), payload...)
			h, n, err := Parse(b, ParseOptions{})
			require.NoError(t, err, c.name)
			require.Equal(t, len(c.in), n, c.name)
			assert.Equal(t, payload, string(b[n:]), c.name)
			assert.Equal(t, c.in, b[:n], c.name)
			assert.Equal(t, fixCRCWant(c), h, c.name)
		}
	}
}

// The first byte that cannot start a header decides: no waiting for more.
func TestNotProxyEarly(t *testing.T) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", "\x16\x03\x01\x00", "SSH-2.0-OpenSSH\r\n", "\x00", "p"} {
		for i := 1; i <= len(s); i++ {
			_, _, err := Parse([]byte(s[:i]), ParseOptions{})
			assert.Equal(t, ErrNotProxy, err, "%q", s[:i])
		}
	}
	cases := []struct {
		in   string
		good int // bytes that are still a valid prefix
	}{
		{"PROXX", 4},
		{"PROXY_", 5},
		{sig[:6] + "X", 6},
		{sig[:11] + "\x00", 11},
	}
	for _, c := range cases {
		_, _, err := Parse([]byte(c.in[:c.good]), ParseOptions{})
		assert.Equal(t, ErrIncomplete, err, "%q", c.in[:c.good])
		_, _, err = Parse([]byte(c.in), ParseOptions{})
		assert.Equal(t, ErrNotProxy, err, "%q", c.in)
	}
	_, _, err := Parse(nil, ParseOptions{})
	assert.Equal(t, ErrIncomplete, err)
	_, _, err = Parse([]byte("P"), ParseOptions{DisableV1: true})
	assert.Equal(t, ErrNotProxy, err)
	_, _, err = Parse([]byte("\r"), ParseOptions{DisableV2: true})
	assert.Equal(t, ErrNotProxy, err)
}

// A bad header fails as soon as the offending bytes are in, before CRLF
// or before the announced length has arrived.
func TestInvalidEarly(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{"PROXY T", nil},
		{"PROXY X", ErrInvalid},
		{"PROXY TCP5", ErrInvalid},
		{"PROXY UNKNOWNX", ErrInvalid},
		{"PROXY TCP4 ", nil},
		{"PROXY TCP4 1.2.3.4 5", nil},
		{"PROXY TCP4 1.2.3.256", ErrInvalid},
		{"PROXY TCP4 1.2.3.4.", ErrInvalid},
		{"PROXY TCP4 01", ErrInvalid},
		{"PROXY TCP4 ::", ErrInvalid},
		{"PROXY TCP6 fe80::1%", ErrInvalid},
		{"PROXY TCP6 1.2.3.4 ", ErrInvalid},
		{"PROXY TCP4 1.2.3.4  ", ErrInvalid},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 01", ErrInvalid},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 70000", ErrInvalid},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", ErrInvalid},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r", ErrInvalid},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", nil},
		{"PROXY UNKNOWN anything at all", nil},
		{sig + "\x11", ErrInvalid},
		{sig + "\x23", ErrInvalid},
		{sig + "\x21\x15", ErrInvalid},
		{sig + "\x21\x11\x00\x04", ErrInvalid},
		{sig + "\x21\x11\x10\x00", ErrTooLong},
		{sig + "\x21\x11\x00\x0c\x01", nil},
	}
	for _, c := range cases {
		_, _, err := Parse([]byte(c.in), ParseOptions{})
		if c.want == nil {
			assert.Equal(t, ErrIncomplete, err, "%q", c.in)
		} else {
			assert.ErrorIs(t, err, c.want, "%q", c.in)
		}
	}
}

func TestMaxV2Len(t *testing.T) {
	// The largest header the length field allows: 16 + 65535.
	pad := strings.Repeat("\x00", 0xFFFF-12-3)
	b := v2(0x21, 0x11, append(tcp4Body(), tlvBytes(PP2_TYPE_NOOP, pad))...)
	require.Len(t, b, MaxV2Limit)

	_, _, err := Parse(b, ParseOptions{})
	assert.ErrorIs(t, err, ErrTooLong)
	_, _, err = Parse(b[:V2HeaderLen], ParseOptions{})
	assert.ErrorIs(t, err, ErrTooLong, "decided on the fixed part alone")

	for _, limit := range []int{MaxV2Limit, MaxV2Limit + 1, 1 << 30} {
		h, n, err := Parse(b, ParseOptions{MaxV2Len: limit})
		require.NoError(t, err, "limit %d", limit)
		assert.Equal(t, MaxV2Limit, n)
		assert.Len(t, h.TLVs, 1)
	}
	_, n, err := Parse(katV2, ParseOptions{MaxV2Len: len(katV2)})
	assert.NoError(t, err)
	assert.Equal(t, len(katV2), n)
}

func TestRoundTrip(t *testing.T) {
	ssl := SSL{Client: PP2_CLIENT_SSL, Verify: 0, TLVs: []TLV{{PP2_SUBTYPE_SSL_VERSION, []byte("TLSv1.3")}}}
	sslValue, err := ssl.AppendValue(nil)
	require.NoError(t, err)

	headers := []Header{
		NewTCP(ap("192.0.2.1:1"), ap("192.0.2.2:443")),
		NewTCP(ap("[2001:db8::1]:65535"), ap("[2001:db8::2]:0")),
		NewTCP(ap("[::ffff:10.1.2.3]:4000"), ap("[::ffff:10.0.0.1]:80")),
		NewTCP(ap("10.1.2.3:4000"), ap("[2001:db8::2]:443")),
		NewTCP(netip.AddrPort{}, ap("10.0.0.1:80")),
		{Command: Local},
		{Command: Proxy, Transport: UDP4, Source: ap("1.1.1.1:53"), Destination: ap("8.8.8.8:53")},
		{Command: Proxy, Transport: UDP6, Source: ap("[::1]:53"), Destination: ap("[::2]:53")},
		{Command: Proxy, Transport: UnixStream, SourceUnix: unixPath("/tmp/a"), DestinationUnix: unixPath("/tmp/b")},
		{Command: Proxy, Transport: TCP4, Source: ap("1.2.3.4:5"), Destination: ap("6.7.8.9:10"), TLVs: []TLV{
			{PP2_TYPE_ALPN, []byte("h2")},
			{PP2_TYPE_AUTHORITY, []byte("example.com")},
			{PP2_TYPE_SSL, sslValue},
			{PP2_TYPE_NOOP, []byte{}},
			{PP2_TYPE_NETNS, []byte("ns1")},
		}},
		{Command: Local, TLVs: []TLV{{PP2_TYPE_UNIQUE_ID, []byte("abc")}}},
	}
	for _, h := range headers {
		// v2 carries everything.
		out, err := h.AppendV2(nil)
		require.NoError(t, err, "%+v", h)
		got, n, err := Parse(out, ParseOptions{})
		require.NoError(t, err)
		assert.Equal(t, len(out), n)
		want := h
		want.Version = V2
		assert.Equal(t, want, got)

		// v1 carries TCP and UNKNOWN only.
		out, err = h.AppendV1(nil)
		switch {
		case h.Command == Local || h.Transport == Unspec:
			require.NoError(t, err)
			assert.Equal(t, "PROXY UNKNOWN\r\n", string(out))
			got, _, err = Parse(out, ParseOptions{})
			require.NoError(t, err)
			assert.Equal(t, Header{Version: V1, Command: Local, Transport: Unspec}, got)
		case h.Transport == TCP4 || h.Transport == TCP6:
			require.NoError(t, err)
			got, n, err = Parse(out, ParseOptions{})
			require.NoError(t, err, "%q", out)
			assert.Equal(t, len(out), n)
			want := h
			want.Version, want.TLVs = V1, nil
			assert.Equal(t, want, got)
		default:
			assert.ErrorIs(t, err, ErrInvalid, "%s has no v1 form", h.Transport)
			assert.Empty(t, out)
		}
	}
}

func TestAppendCRC32C(t *testing.T) {
	h := NewTCP(ap("10.0.0.1:1"), ap("10.0.0.2:2"))
	h.TLVs = []TLV{{PP2_TYPE_CRC32C, []byte("junk value ignored")}, {PP2_TYPE_ALPN, []byte("h2")}}
	out, err := h.AppendV2(nil)
	require.NoError(t, err)
	got, _, err := Parse(out, ParseOptions{})
	require.NoError(t, err)
	crc, ok := got.Lookup(PP2_TYPE_CRC32C)
	require.True(t, ok)
	zeroed := bytes.Clone(out)
	copy(zeroed[V2HeaderLen+12+3:], []byte{0, 0, 0, 0})
	assert.Equal(t, crc32.Checksum(zeroed, crc32.MakeTable(crc32.Castagnoli)), binary.BigEndian.Uint32(crc))
}

func TestNewTCP(t *testing.T) {
	cases := []struct {
		src, dst string
		want     Header
	}{
		{"192.0.2.1:1", "192.0.2.2:2", Header{Command: Proxy, Transport: TCP4, Source: ap("192.0.2.1:1"), Destination: ap("192.0.2.2:2")}},
		{"[::ffff:192.0.2.1]:1", "[::ffff:192.0.2.2]:2", Header{Command: Proxy, Transport: TCP4, Source: ap("192.0.2.1:1"), Destination: ap("192.0.2.2:2")}},
		{"[::ffff:192.0.2.1]:1", "192.0.2.2:2", Header{Command: Proxy, Transport: TCP4, Source: ap("192.0.2.1:1"), Destination: ap("192.0.2.2:2")}},
		{"[2001:db8::1]:1", "[2001:db8::2]:2", Header{Command: Proxy, Transport: TCP6, Source: ap("[2001:db8::1]:1"), Destination: ap("[2001:db8::2]:2")}},
		{"192.0.2.1:1", "[2001:db8::2]:2", Header{Command: Proxy, Transport: TCP6, Source: ap("[::ffff:192.0.2.1]:1"), Destination: ap("[2001:db8::2]:2")}},
		{"[fe80::1%eth0]:1", "[fe80::2%eth0]:2", Header{Command: Proxy, Transport: TCP6, Source: ap("[fe80::1]:1"), Destination: ap("[fe80::2]:2")}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, NewTCP(ap(c.src), ap(c.dst)), "%s -> %s", c.src, c.dst)
	}
	assert.Equal(t, Header{Command: Proxy, Transport: Unspec}, NewTCP(ap("1.2.3.4:1"), netip.AddrPort{}))
}

func TestAppendErrors(t *testing.T) {
	cases := []struct {
		name   string
		h      Header
		v1, v2 error // nil: encodes
	}{
		{"bad command", Header{Command: 7}, ErrInvalid, ErrInvalid},
		{"bad transport", Header{Command: Proxy, Transport: 0x13}, ErrInvalid, ErrInvalid},
		{"tcp4 with ipv6", Header{Command: Proxy, Transport: TCP4, Source: ap("[::1]:1"), Destination: ap("1.2.3.4:1")}, ErrInvalid, ErrInvalid},
		{"tcp6 with ipv4", Header{Command: Proxy, Transport: TCP6, Source: ap("1.2.3.4:1"), Destination: ap("[::1]:1")}, ErrInvalid, ErrInvalid},
		{"tcp4 without addresses", Header{Command: Proxy, Transport: TCP4}, ErrInvalid, ErrInvalid},
		{"tcp6 zone", Header{Command: Proxy, Transport: TCP6, Source: ap("[fe80::1%eth0]:1"), Destination: ap("[::1]:1")}, ErrInvalid, ErrInvalid},
		{"udp4 in v1", Header{Command: Proxy, Transport: UDP4, Source: ap("1.2.3.4:1"), Destination: ap("1.2.3.4:2")}, ErrInvalid, nil},
		{"unix path too long", Header{Command: Proxy, Transport: UnixStream, SourceUnix: make([]byte, 109)}, ErrInvalid, ErrInvalid},
		{"two crc", Header{Command: Local, TLVs: []TLV{{Type: PP2_TYPE_CRC32C}, {Type: PP2_TYPE_CRC32C}}}, nil, ErrInvalid},
		{"unique id too long", Header{Command: Local, TLVs: []TLV{{PP2_TYPE_UNIQUE_ID, make([]byte, 129)}}}, nil, ErrInvalid},
		{"bad ssl value", Header{Command: Local, TLVs: []TLV{{PP2_TYPE_SSL, []byte{1}}}}, nil, ErrInvalid},
		{"tlv too long", Header{Command: Local, TLVs: []TLV{{PP2_TYPE_NOOP, make([]byte, 0x10000)}}}, nil, ErrTooLong},
		{"tlvs too long together", Header{Command: Local, TLVs: []TLV{{PP2_TYPE_NOOP, make([]byte, 0x8000)}, {PP2_TYPE_NOOP, make([]byte, 0x8000)}}}, nil, ErrTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("keep")
			for _, v := range []struct {
				f    func([]byte) ([]byte, error)
				want error
			}{{c.h.AppendV1, c.v1}, {c.h.AppendV2, c.v2}} {
				out, err := v.f(prefix)
				if v.want == nil {
					assert.NoError(t, err)
					continue
				}
				assert.ErrorIs(t, err, v.want)
				assert.Equal(t, "keep", string(out), "dst unchanged on error")
			}
		})
	}
}

func TestParseSSL(t *testing.T) {
	h, _, err := Parse(validV2()[len(validV2())-1].in, ParseOptions{})
	require.NoError(t, err)
	v, ok := h.Lookup(PP2_TYPE_SSL)
	require.True(t, ok)
	var s SSL
	require.NoError(t, ParseSSL(&s, v))
	assert.Equal(t, uint8(PP2_CLIENT_SSL|PP2_CLIENT_CERT_CONN), s.Client)
	assert.Zero(t, s.Verify)
	ver, ok := s.Lookup(PP2_SUBTYPE_SSL_VERSION)
	assert.True(t, ok)
	assert.Equal(t, "TLSv1.3", string(ver))
	cn, _ := s.Lookup(PP2_SUBTYPE_SSL_CN)
	assert.Equal(t, "client.example", string(cn))
	_, ok = s.Lookup(PP2_SUBTYPE_SSL_CIPHER)
	assert.False(t, ok)

	out, err := s.AppendValue(nil)
	require.NoError(t, err)
	assert.Equal(t, v, out)

	require.ErrorIs(t, ParseSSL(&s, []byte{1, 0, 0, 0}), ErrInvalid)
	require.NoError(t, ParseSSL(&s, []byte{1, 0, 0, 0, 9}))
	assert.Equal(t, uint32(9), s.Verify)
	assert.Empty(t, s.TLVs)
}

// TLV values alias the buffer but cannot be appended over what follows.
func TestTLVValueCapacityClipped(t *testing.T) {
	c := validV2()[2] // tcp6 alpn authority
	b := bytes.Clone(c.in)
	h, _, err := Parse(b, ParseOptions{})
	require.NoError(t, err)
	alpn := h.TLVs[0].Value
	assert.Equal(t, len(alpn), cap(alpn))
	_ = append(alpn, 'X')
	assert.Equal(t, c.in, b)
	b[len(b)-1] = '!'
	assert.Equal(t, byte('!'), h.TLVs[1].Value[len(h.TLVs[1].Value)-1], "values alias the buffer")
}

func TestParseIntoReuse(t *testing.T) {
	h := Header{TLVs: make([]TLV, 0, 8)}
	c := validV2()[2]
	_, err := ParseInto(&h, c.in, ParseOptions{})
	require.NoError(t, err)
	require.Len(t, h.TLVs, 2)
	first := &h.TLVs[:1][0]

	// A v1 header next: TLVs emptied, capacity kept.
	_, err = ParseInto(&h, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ParseOptions{})
	require.NoError(t, err)
	assert.Empty(t, h.TLVs)
	assert.Equal(t, 8, cap(h.TLVs))

	// An error resets the header but keeps the capacity.
	_, err = ParseInto(&h, []byte("GET"), ParseOptions{})
	require.ErrorIs(t, err, ErrNotProxy)
	assert.Equal(t, Header{TLVs: h.TLVs}, h)
	assert.Equal(t, 8, cap(h.TLVs))
	_, err = ParseInto(&h, c.in, ParseOptions{})
	require.NoError(t, err)
	assert.Same(t, first, &h.TLVs[0])
}

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	in := validV2()[3].in // tcp4 with ALPN, AUTHORITY, CRC32C
	two := v2(0x21, 0x11, append(tcp4Body(), tlvBytes(PP2_TYPE_ALPN, "h2"), tlvBytes(PP2_TYPE_AUTHORITY, "example.com"))...)
	v1 := []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
	v1six := []byte("PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 56324 443\r\n")
	h := Header{TLVs: make([]TLV, 0, 4)}
	for name, b := range map[string][]byte{"v2 two tlvs": two, "v2 with crc": in, "v1 tcp4": v1, "v1 tcp6": v1six} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseInto(&h, b, ParseOptions{}); err != nil {
				panic(err)
			}
		})
		assert.Zero(t, allocs, "ParseInto %s", name)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseInto(&h, b4(two), ParseOptions{}); err != ErrIncomplete {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "ParseInto incomplete")

	send := NewTCP(ap("192.0.2.1:1234"), ap("198.51.100.1:443"))
	send.TLVs = []TLV{{PP2_TYPE_ALPN, []byte("h2")}, {Type: PP2_TYPE_CRC32C}}
	dst := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := send.AppendV2(dst[:0]); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "AppendV2")
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := send.AppendV1(dst[:0]); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "AppendV1")
}

func b4(b []byte) []byte { return b[:len(b)-4] }

func TestStrings(t *testing.T) {
	assert.Equal(t, "v1", V1.String())
	assert.Equal(t, "v2", V2.String())
	assert.Equal(t, "v?", Version(0).String())
	assert.Equal(t, "LOCAL", Local.String())
	assert.Equal(t, "PROXY", Proxy.String())
	assert.Equal(t, "COMMAND?", Command(9).String())
	for tr, s := range map[Transport]string{Unspec: "UNSPEC", TCP4: "TCP4", UDP4: "UDP4", TCP6: "TCP6", UDP6: "UDP6",
		UnixStream: "UNIX_STREAM", UnixDgram: "UNIX_DGRAM", 0x99: "TRANSPORT?"} {
		assert.Equal(t, s, tr.String())
	}
}

// TestLoopbackByteByByte sends a header and payload over a real TCP
// connection one byte per write, and parses on the receiving side the way
// a session does: append what each read returns, Parse everything so far.
func TestLoopbackByteByByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	payload := []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
	for _, c := range []validCase{validV1()[0], validV2()[3]} {
		t.Run(c.name, func(t *testing.T) {
			sent := make(chan error, 1)
			go func() {
				conn, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					sent <- err
					return
				}
				defer conn.Close()
				_ = conn.(*net.TCPConn).SetNoDelay(true)
				for _, b := range append(bytes.Clone(c.in), payload...) {
					if _, err := conn.Write([]byte{b}); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			conn, err := ln.Accept()
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))

			var (
				buf   []byte
				h     Header
				n     int
				reads int
				chunk [16]byte
			)
			for {
				r, err := conn.Read(chunk[:])
				require.NoError(t, err)
				buf = append(buf, chunk[:r]...)
				reads++
				n, err = ParseInto(&h, buf, ParseOptions{})
				if err == ErrIncomplete {
					continue
				}
				require.NoError(t, err)
				break
			}
			assert.Equal(t, fixCRCWant(c), h)
			assert.Equal(t, len(c.in), n)
			rest, err := io.ReadAll(conn)
			require.NoError(t, err)
			assert.Equal(t, payload, append(buf[n:], rest...))
			require.NoError(t, <-sent)
			t.Logf("%d reads", reads)
		})
	}
}

// errors.Is must see through the wrapping used for detail.
func TestErrorWrapping(t *testing.T) {
	_, _, err := Parse([]byte("PROXY TCP9\r\n"), ParseOptions{})
	assert.True(t, errors.Is(err, ErrInvalid))
	assert.Contains(t, err.Error(), "proxyproto: invalid header: v1: unknown protocol")
}
