package clienthello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realCase is a crypto/tls client configuration and the Hello its first
// flight must parse to (Len aside, which is the capture's length).
type realCase struct {
	name string
	cfg  *tls.Config
	want Hello
}

func realCases(t testing.TB) []realCase {
	return []realCase{
		{
			name: "sni+alpn",
			cfg:  &tls.Config{ServerName: "WWW.Example.com", NextProtos: []string{"h2", "http/1.1"}},
			want: Hello{Version: tls.VersionTLS12, ServerName: "www.example.com", ALPN: []string{"h2", "http/1.1"},
				SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}},
		},
		{
			// crypto/tls sends no SNI for an IP address (RFC 6066 §3:
			// "Literal IPv4 and IPv6 addresses are not permitted").
			name: "ip-no-sni",
			cfg:  &tls.Config{ServerName: "192.0.2.1"},
			want: Hello{Version: tls.VersionTLS12, SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}},
		},
		{
			name: "tls12-only",
			cfg:  &tls.Config{ServerName: "legacy.example.org", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
			want: Hello{Version: tls.VersionTLS12, ServerName: "legacy.example.org", ALPN: []string{"http/1.1"},
				SupportedVersions: []uint16{tls.VersionTLS12}},
		},
		{
			name: "tls13-only",
			cfg:  &tls.Config{ServerName: "modern.example.org.", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "acme-tls/1", "x-custom"}},
			want: Hello{Version: tls.VersionTLS12, ServerName: "modern.example.org", ALPN: []string{"h2", "acme-tls/1", "x-custom"},
				SupportedVersions: []uint16{tls.VersionTLS13}},
		},
		{
			// The outer hello names the ECH configuration's public name;
			// the real one is encrypted.
			name: "ech",
			cfg: &tls.Config{ServerName: "secret.example", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
				EncryptedClientHelloConfigList: echConfigList(t, "public.example")},
			want: Hello{Version: tls.VersionTLS12, ServerName: "public.example", ALPN: []string{"h2"},
				SupportedVersions: []uint16{tls.VersionTLS13}, ECH: true},
		},
	}
}

func TestRealHellos(t *testing.T) {
	for _, c := range realCases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, info := capture(t, c.cfg)
			message(t, b) // a single record, holding exactly one message

			h, err := Parse(b)
			require.NoError(t, err)
			want := c.want
			want.Len = len(b)
			assert.Equal(t, want, h)

			// crypto/tls, on the server side, read the same bytes.
			assert.Equal(t, strings.ToLower(info.ServerName), h.ServerName)
			assert.Equal(t, info.SupportedProtos, nilIfEmpty(h.ALPN))
			assert.Equal(t, info.SupportedVersions, h.SupportedVersions)
			assert.Equal(t, slices.Contains(info.Extensions, extEncryptedClientHello), h.ECH)
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// Every strict prefix of a hello is ErrIncomplete, and bytes after it
// change nothing.
func TestEverySplit(t *testing.T) {
	for _, c := range realCases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, _ := capture(t, c.cfg)
			want, err := Parse(b)
			require.NoError(t, err)
			for i := range len(b) {
				_, err := Parse(b[:i])
				require.Equal(t, ErrIncomplete, err, "prefix of %d bytes", i)
			}
			// What a TLS 1.3 client may send next (RFC 8446 D.4), and junk.
			for _, next := range [][]byte{record(20, []byte{1}), record(23, []byte("early")), []byte("\x00garbage")} {
				h, err := Parse(append(bytes.Clone(b), next...))
				require.NoError(t, err)
				assert.Equal(t, want, h)
			}
		})
	}
}

// The same message fragmented across records (RFC 8446 §5.1) parses to
// the same Hello; Len counts the record headers.
func TestFragmented(t *testing.T) {
	for _, c := range realCases(t) {
		t.Run(c.name, func(t *testing.T) {
			b, _ := capture(t, c.cfg)
			msg := message(t, b)
			want, err := Parse(b)
			require.NoError(t, err)

			for _, f := range []struct {
				name  string
				sizes []int
			}{
				{"2", []int{len(msg) / 2}},
				{"3", []int{100, len(msg) - 200, 100}},
				{"header-split", []int{1, 2, 1, 500}},
				// One-byte records as far as MaxHelloRecords allows (the
				// whole of a TLS 1.2 hello), the rest in the last record.
				{"1-byte", append(slices.Repeat([]int{1}, MaxHelloRecords-1), len(msg))},
				{"7-byte", []int{7}},
			} {
				t.Run(f.name, func(t *testing.T) {
					fb := fragment(msg, f.sizes...)
					h, err := Parse(fb)
					require.NoError(t, err)
					w := want
					w.Len = len(fb)
					assert.Equal(t, w, h)

					for i := range len(fb) {
						if _, err := Parse(fb[:i]); err != ErrIncomplete {
							t.Fatalf("prefix of %d bytes: %v", i, err)
						}
					}
					h, err = Parse(append(fb, record(23, []byte("x"))...))
					require.NoError(t, err)
					assert.Equal(t, w, h)
				})
			}
		})
	}
}

func TestNotTLS(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		at   int // bytes needed to decide
	}{
		{"http", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 1},
		{"http2-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1},
		{"proxy-v1", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 1},
		{"sslv2-hello", "\x80\x2e\x01\x00\x02\x00\x15", 1},
		{"alert-record", "\x15\x03\x03\x00\x02\x02\x28", 1},
		{"ccs-record", "\x14\x03\x03\x00\x01\x01", 1},
		{"appdata-record", "\x17\x03\x03\x00\x01x", 1},
		{"version-2", "\x16\x02\x00\x00\x05\x01\x00\x00\x01\x00", 2},
		{"version-0x16", "\x16\x16\x03", 2},
		{"nul", "\x00", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := c.at; i <= len(c.in); i++ {
				_, err := Parse([]byte(c.in[:i]))
				require.Equal(t, ErrNotTLS, err, "first %d bytes", i)
			}
			if c.at > 1 {
				_, err := Parse([]byte(c.in[:c.at-1]))
				require.Equal(t, ErrIncomplete, err)
			}
		})
	}
	_, err := Parse(nil)
	assert.Equal(t, ErrIncomplete, err)
	_, err = Parse([]byte{0x16})
	assert.Equal(t, ErrIncomplete, err)
	_, err = Parse([]byte{0x16, 0x03})
	assert.Equal(t, ErrIncomplete, err)
}

// malformedCase is input that must be rejected as ErrMalformed with a
// reason containing why, decided on its first at bytes (0: on the whole
// input only).
type malformedCase struct {
	name string
	in   []byte
	why  string
	at   int
}

func malformedCases() []malformedCase {
	msg := handshake(typeClientHello, helloBody([]ext{sniExt("example.com")}))
	withBody := func(body []byte) []byte { return record(contentHandshake, handshake(typeClientHello, body)) }
	base := helloBody(nil) // through compression_methods
	manyExts := func(dup bool) []ext {
		var exts []ext
		for i := range 100 {
			exts = append(exts, ext{uint16(1000 + i), nil})
		}
		if dup {
			exts = append(exts, ext{1042, []byte{1}})
		}
		return exts
	}
	return []malformedCase{
		// Records.
		{"empty-record", record(contentHandshake, nil), "empty handshake record", 5},
		{"record-overflow", append([]byte{22, 3, 1, 0x40, 0x01}, msg...), "record of 16385 bytes", 5},
		{"alert-between-fragments", cat(record(22, msg[:10]), record(21, []byte{2, 40}), record(22, msg[10:])), "content type 21", 16},
		{"ccs-between-fragments", cat(record(22, msg[:10]), record(20, []byte{1}), record(22, msg[10:])), "content type 20", 16},
		{"bad-version-second-record", cat(record(22, msg[:10]), []byte{22, 2, 0, 0, 1, 0}), "record version 2.x", 17},
		{"empty-second-record", cat(record(22, msg[:10]), record(22, nil), record(22, msg[10:])), "empty handshake record", 20},
		{"record-past-hello", record(22, append(bytes.Clone(msg), 0)), "runs 1 bytes past", 9},
		{"fragment-past-hello", cat(record(22, msg[:10]), record(22, append(bytes.Clone(msg[10:]), 1, 2, 3))), "runs 3 bytes past", 20},
		{"server-hello", record(22, handshake(2, helloBody(nil))), "type 2", 6},
		{"hello-request", record(22, handshake(0, nil)), "type 0", 6},
		{"tiny-hello", record(22, handshake(1, make([]byte, 40))), "ClientHello of 44 bytes", 9},

		// Fixed fields.
		{"legacy-version-2", withBody(cat(u16s(0x0200), base[2:])), "legacy_version 0x0200", 0},
		{"session-id-33", withBody(cat(u16s(0x0303), make([]byte, 32), p8(make([]byte, 33)), p16(u16s(0x1301)), p8([]byte{0}))), "legacy_session_id", 0},
		{"session-id-overflow", withBody(cat(u16s(0x0303), make([]byte, 32), []byte{32}, make([]byte, 8))), "legacy_session_id", 0},
		{"odd-cipher-suites", withBody(cat(u16s(0x0303), make([]byte, 32), p8(nil), p16([]byte{0x13, 0x01, 0x13}), p8([]byte{0}))), "cipher_suites", 0},
		{"no-cipher-suites", withBody(cat(u16s(0x0303), make([]byte, 32), p8(nil), p16(nil), p8([]byte{0}), make([]byte, 2))), "cipher_suites", 0},
		{"no-compression", withBody(cat(u16s(0x0303), make([]byte, 32), p8(nil), p16(u16s(0x1301, 0x1302)), p8(nil), []byte{0})), "compression", 0},
		{"extensions-overflow", withBody(cat(base, []byte{0, 9}, u16s(0, 0))), "extensions block overflows", 0},
		{"extensions-1-byte", withBody(cat(base, []byte{0})), "extensions block overflows", 0},
		{"bytes-after-extensions", withBody(cat(base, p16(nil), []byte{0})), "1 bytes after the extensions", 0},
		{"extension-header-truncated", withBody(cat(base, p16([]byte{0, 0, 0}))), "extension header truncated", 0},
		{"extension-length-overflow", withBody(cat(base, p16(cat(u16s(extALPN, 10), make([]byte, 9))))), "extension 0x0010 overflows", 0},

		// Extension blocks.
		{"duplicate-sni", hello(sniExt("a.example"), sniExt("a.example")), "duplicate extension 0x0000", 0},
		{"duplicate-unknown", hello(ext{0x1234, nil}, alpnExt("h2"), ext{0x1234, []byte{1}}), "duplicate extension 0x1234", 0},
		{"duplicate-among-many", hello(manyExts(true)...), "duplicate extension 0x0412", 0},
		{"psk-not-last", hello(ext{extPreSharedKey, []byte{0, 0}}, sniExt("a.example")), "pre_shared_key", 0},

		// server_name (RFC 6066 §3).
		{"sni-empty-data", hello(ext{extServerName, nil}), "server_name list", 0},
		{"sni-empty-list", hello(ext{extServerName, p16(nil)}), "server_name list", 0},
		{"sni-list-short", hello(ext{extServerName, cat([]byte{0, 3}, []byte{0}, p16([]byte("a.example")))}), "server_name list", 0},
		{"sni-list-trailing", hello(ext{extServerName, cat(p16(cat([]byte{0}, p16([]byte("a.example")))), []byte{0})}), "server_name list", 0},
		{"sni-name-overflow", hello(ext{extServerName, p16(cat([]byte{0, 0, 20}, []byte("a.example")))}), "overflows its list", 0},
		{"sni-entry-truncated", hello(ext{extServerName, p16([]byte{0, 0})}), "overflows its list", 0},
		{"sni-two-host-names", hello(sniExt("a.example", "b.example")), "two server names of type 0", 0},
		{"sni-empty-host-name", hello(sniExt("")), "empty host_name", 0},
		{"sni-overlong", hello(sniExt(strings.Repeat("a.", 127) + "a")), "host_name of 255 bytes", 0},
		{"sni-long-label", hello(sniExt(strings.Repeat("a", 64) + ".example")), "label of more than 63", 0},
		{"sni-nul", hello(sniExt("example.com\x00.evil")), "byte 0x00", 0},
		{"sni-space", hello(sniExt("exa mple.com")), "byte 0x20", 0},
		{"sni-utf8", hello(sniExt("bücher.example")), "byte 0xc3", 0},
		{"sni-colon", hello(sniExt("[::1]")), "byte 0x5b", 0},
		{"sni-empty-label", hello(sniExt("a..example")), "empty label", 0},
		{"sni-leading-dot", hello(sniExt(".example")), "empty label", 0},
		{"sni-two-trailing-dots", hello(sniExt("example..")), "empty label", 0},
		{"sni-dot", hello(sniExt(".")), "host_name of 1 bytes", 0},

		// ALPN (RFC 7301 §3.1).
		{"alpn-empty-data", hello(ext{extALPN, nil}), "ALPN list", 0},
		{"alpn-empty-list", hello(ext{extALPN, p16(nil)}), "ALPN list", 0},
		{"alpn-list-trailing", hello(ext{extALPN, cat(p16(p8([]byte("h2"))), []byte{0})}), "ALPN list", 0},
		{"alpn-empty-name", hello(ext{extALPN, p16([]byte{0, 2, 'h', '2'})}), "ALPN protocol name", 0},
		{"alpn-truncated-name", hello(ext{extALPN, p16([]byte{2, 'h', '2', 5, 'h'})}), "ALPN protocol name", 0},

		// supported_versions (RFC 8446 §4.2.1).
		{"versions-empty", hello(versionsExt()), "supported_versions", 0},
		{"versions-odd", hello(ext{extSupportedVersions, p8([]byte{3, 4, 3})}), "supported_versions", 0},
		{"versions-overflow", hello(ext{extSupportedVersions, []byte{4, 3, 4}}), "supported_versions", 0},
		{"versions-trailing", hello(ext{extSupportedVersions, cat(p8(u16s(0x0304)), []byte{0})}), "supported_versions", 0},
		{"versions-no-data", hello(ext{extSupportedVersions, nil}), "supported_versions", 0},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases() {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.in)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), c.why)
			if c.at > 0 {
				_, err := Parse(c.in[:c.at])
				require.ErrorIs(t, err, ErrMalformed, "decided on the first %d bytes", c.at)
				_, err = Parse(c.in[:c.at-1])
				require.Equal(t, ErrIncomplete, err, "not decided on %d bytes", c.at-1)
			}
			// More bytes do not change the answer.
			_, err = Parse(append(bytes.Clone(c.in), hello(sniExt("x.example"))...))
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

// Valid oddities: each parses, to the Hello given (Len aside).
func TestValidVariants(t *testing.T) {
	many := []ext{sniExt("Many.Example")}
	for i := range 200 {
		many = append(many, ext{uint16(2000 + i), []byte{byte(i)}})
	}
	label63 := strings.Repeat("x", 63)
	name253 := strings.Join([]string{label63, label63, label63, strings.Repeat("y", 61)}, ".")
	for _, c := range []struct {
		name string
		in   []byte
		want Hello
	}{
		{"no-extensions-block", hello(), Hello{Version: 0x0303}},
		{"empty-extensions-block", hello([]ext{}...), Hello{Version: 0x0303}},
		{"sni-no-host-name", hello(ext{extServerName, p16(cat([]byte{1}, p16([]byte("other"))))}), Hello{Version: 0x0303}},
		{"sni-host-name-after-other-type", hello(ext{extServerName, p16(cat([]byte{7}, p16([]byte("x\x00y")), []byte{0}, p16([]byte("a.b"))))}), Hello{Version: 0x0303, ServerName: "a.b"}},
		{"sni-trailing-dot", hello(sniExt("Example.COM.")), Hello{Version: 0x0303, ServerName: "example.com"}},
		{"sni-253", hello(sniExt(name253)), Hello{Version: 0x0303, ServerName: name253}},
		{"sni-253-trailing-dot", hello(sniExt(name253 + ".")), Hello{Version: 0x0303, ServerName: name253}},
		{"sni-underscore-digits-hyphen", hello(sniExt("_acme-challenge.1-2.example")), Hello{Version: 0x0303, ServerName: "_acme-challenge.1-2.example"}},
		{"sni-ipv4-literal", hello(sniExt("192.0.2.1")), Hello{Version: 0x0303, ServerName: "192.0.2.1"}},
		{"single-label", hello(sniExt("localhost")), Hello{Version: 0x0303, ServerName: "localhost"}},
		{"alpn-opaque", hello(alpnExt("\x00\xff", "h2")), Hello{Version: 0x0303, ALPN: []string{"\x00\xff", "h2"}}},
		{"alpn-repeated", hello(alpnExt("h2", "h2")), Hello{Version: 0x0303, ALPN: []string{"h2", "h2"}}},
		{"grease", hello(ext{0x0a0a, nil}, versionsExt(0x1a1a, 0x0304, 0x0303), sniExt("g.example"), ext{0xfafa, []byte{0}}),
			Hello{Version: 0x0303, ServerName: "g.example", SupportedVersions: []uint16{0x1a1a, 0x0304, 0x0303}}},
		{"ech-empty", hello(ext{extEncryptedClientHello, nil}), Hello{Version: 0x0303, ECH: true}},
		{"psk-last", hello(sniExt("r.example"), ext{extPreSharedKey, []byte{1, 2}}), Hello{Version: 0x0303, ServerName: "r.example"}},
		{"many-extensions", hello(many...), Hello{Version: 0x0303, ServerName: "many.example"}},
		{"ssl3-record-and-hello", cat([]byte{22, 3, 0}, hello(sniExt("old.example"))[3:5], handshake(1, cat(u16s(0x0300), helloBody([]ext{sniExt("old.example")})[2:]))),
			Hello{Version: 0x0300, ServerName: "old.example"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := Parse(c.in)
			require.NoError(t, err)
			want := c.want
			want.Len = len(c.in)
			assert.Equal(t, want, h)
		})
	}
}

func TestTooLarge(t *testing.T) {
	// A message of exactly MaxHelloSize bytes fits one record (2^14) and
	// parses; one byte more is too large, known from its header.
	pad := func(total int) []byte {
		n := total - len(handshake(1, helloBody([]ext{{0x15, nil}})))
		return handshake(1, helloBody([]ext{{0x15, make([]byte, n)}})) // padding, RFC 7685
	}
	msg := pad(MaxHelloSize)
	require.Len(t, msg, MaxHelloSize)
	h, err := Parse(record(22, msg))
	require.NoError(t, err)
	assert.Equal(t, MaxHelloSize+5, h.Len)
	h, err = Parse(fragment(msg, 1000))
	require.NoError(t, err)
	assert.Equal(t, MaxHelloSize+5*17, h.Len)

	big := pad(MaxHelloSize + 1)
	for _, b := range [][]byte{fragment(big, 1<<14), fragment(big, 2, 1, 1000)} {
		_, err := Parse(b)
		require.ErrorIs(t, err, ErrTooLarge)
		assert.Contains(t, err.Error(), "16385 bytes")
	}
	// Decided on the 9th byte, before the body.
	b := fragment(big, 1<<14)
	_, err = Parse(b[:9])
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = Parse(b[:8])
	require.Equal(t, ErrIncomplete, err)
	// Header split over three records: decided on its last byte.
	b = fragment(big, 2, 1, 1)
	_, err = Parse(b[:5+2+5+1+5+1])
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = Parse(b[:5+2+5+1+5])
	require.Equal(t, ErrIncomplete, err)

	// A hello may take MaxHelloRecords records, not one more; decided
	// when the last allowed record is in and the message is not whole.
	small := handshake(1, helloBody([]ext{{0x15, make([]byte, MaxHelloRecords-len(handshake(1, helloBody([]ext{{0x15, nil}}))))}}))
	require.Len(t, small, MaxHelloRecords)
	h, err = Parse(fragment(small, 1))
	require.NoError(t, err)
	assert.Equal(t, MaxHelloRecords*6, h.Len)
	small = append(small[:len(small):len(small)], 0)
	small[3]++ // the length byte of the handshake header
	b = fragment(small, 1)
	_, err = Parse(b[:MaxHelloRecords*6])
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Contains(t, err.Error(), "1024 records")
	_, err = Parse(b[:MaxHelloRecords*6-1])
	require.Equal(t, ErrIncomplete, err)

	// The largest length a header can declare.
	_, err = Parse([]byte{22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff})
	require.ErrorIs(t, err, ErrTooLarge)
}

// Random bytes, and random bytes behind a plausible start, are classified
// without panicking, and the classification is stable under extension.
func TestRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	real, _ := capture(t, realCases(t)[0].cfg)
	for i := range 20000 {
		b := make([]byte, rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		switch i % 4 {
		case 1:
			b = append([]byte{22, 3, 1}, b...)
		case 2:
			b = append([]byte{22, 3, 1, 0, byte(len(b) + 4), 1, 0, 0, byte(len(b))}, b...)
		case 3:
			// A real hello with one byte changed.
			b = bytes.Clone(real)
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		_, err := Parse(b)
		switch {
		case err == nil, err == ErrIncomplete, err == ErrNotTLS,
			errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge):
		default:
			t.Fatalf("unclassified error %v", err)
		}
		if err != ErrIncomplete {
			_, err2 := Parse(append(b, 0x16))
			require.Equal(t, errClass(err), errClass(err2))
		}
	}
}

// errClass maps an error to the sentinel it is, or wraps.
func errClass(err error) error {
	for _, e := range []error{ErrIncomplete, ErrNotTLS, ErrMalformed, ErrTooLarge} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

func TestAllocs(t *testing.T) {
	real, _ := capture(t, realCases(t)[0].cfg)
	msg := message(t, real)
	frag := fragment(msg, 100)
	for _, c := range []struct {
		name string
		in   []byte
		max  float64
	}{
		{"incomplete-half", real[:len(real)/2], 0},
		{"incomplete-fragmented", frag[:len(frag)-1], 0},
		{"not-tls", []byte("GET / HTTP/1.1\r\n"), 0},
		// ServerName, the ALPN slice (its two names are interned) and
		// SupportedVersions.
		{"complete", real, 3},
		// Plus the reassembly buffer.
		{"complete-fragmented", frag, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := testing.AllocsPerRun(100, func() { Parse(c.in) })
			assert.LessOrEqual(t, n, c.max)
		})
	}
}
