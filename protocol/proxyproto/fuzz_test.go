package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// FuzzParse checks the properties a session relies on, whatever the bytes:
//   - Parse never panics and n <= len(b) (n == 0 on error);
//   - every error is one of the four classes;
//   - ErrIncomplete only while b is shorter than the most a header of the
//     version b starts could need;
//   - a header parses the same from b[:n] alone (nothing past it is read),
//     and every strict prefix of it is ErrIncomplete;
//   - re-encoding a parsed header in its version and parsing that gives
//     the same header (v1 UNKNOWN: same command and transport; CRC32C
//     values are compared loosely, since a LOCAL header re-encodes
//     without its ignored addresses and so gets another checksum).
//
// Seeds: every valid and invalid test vector, with and without payload,
// some garbage, and the files in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, c := range validCases() {
		f.Add(c.in)
		f.Add(append(bytes.Clone(c.in), "GET / HTTP/1.1\r\n\r\n"...))
	}
	for _, c := range invalidCases() {
		f.Add(c.in)
	}
	for _, s := range []string{
		"", "P", "PROXY", "PROXY ", "PROXY TCP4 ", "\r", sig, sig + "\x21", sig + "\x21\x11\x00",
		"GET / HTTP/1.1\r\n", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
		"PROXY TCP6 ::ffff:1.2.3.4 :: 0 0\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 1\r\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, opts := range []ParseOptions{{}, {MaxV2Len: MaxV2Limit}, {MaxV2Len: 40, DisableV1: true}} {
			checkParse(t, b, opts)
		}
	})
}

func checkParse(t *testing.T, b []byte, opts ParseOptions) {
	h, n, err := Parse(b, opts)
	if err != nil {
		if n != 0 {
			t.Fatalf("n = %d with error %v", n, err)
		}
		switch {
		case err == ErrIncomplete:
			if !mayGrow(b) {
				t.Fatalf("ErrIncomplete for %d bytes %q", len(b), b)
			}
		case err == ErrNotProxy, errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLong):
		default:
			t.Fatalf("unclassified error %v", err)
		}
		return
	}
	if n <= 0 || n > len(b) {
		t.Fatalf("n = %d for %d bytes", n, len(b))
	}

	// Nothing past the header is read.
	h2, n2, err := Parse(b[:n], opts)
	if err != nil || n2 != n || !reflect.DeepEqual(h, h2) {
		t.Fatalf("b[:n] parses differently: %v, %d, %+v vs %+v", err, n2, h2, h)
	}
	// Every strict prefix is a valid prefix.
	if n <= 300 {
		for i := range n {
			if _, _, err := Parse(b[:i], opts); err != ErrIncomplete {
				t.Fatalf("prefix of %d bytes of a valid %d-byte header: %v", i, n, err)
			}
		}
	}

	var out []byte
	switch h.Version {
	case V1:
		out, err = h.AppendV1(nil)
	case V2:
		out, err = h.AppendV2(nil)
	default:
		t.Fatalf("parsed header without version: %+v", h)
	}
	if err != nil {
		t.Fatalf("re-encoding %+v: %v", h, err)
	}
	h3, n3, err := Parse(out, opts)
	if err != nil || n3 != len(out) {
		t.Fatalf("re-encoded %q does not parse: %v, n=%d", out, err, n3)
	}
	if h.Version == V1 && h.Transport == Unspec {
		if h3.Command != h.Command || h3.Transport != h.Transport {
			t.Fatalf("UNKNOWN re-parsed as %+v", h3)
		}
		return
	}
	if !reflect.DeepEqual(looseCRC(h), looseCRC(h3)) {
		t.Fatalf("round trip changed the header:\n%+v\n%+v\n%q\n%q", h, h3, b[:n], out)
	}
}

// mayGrow reports whether more bytes could still complete b: the only
// case in which ErrIncomplete is an acceptable answer.
func mayGrow(b []byte) bool {
	switch {
	case len(b) == 0:
		return true
	case b[0] == 'P':
		return len(b) < MaxV1Len
	case b[0] == '\r':
		return len(b) < V2HeaderLen || len(b) < V2HeaderLen+int(binary.BigEndian.Uint16(b[14:16]))
	}
	return false
}

func looseCRC(h Header) Header {
	h.TLVs = append([]TLV(nil), h.TLVs...)
	for i := range h.TLVs {
		if h.TLVs[i].Type == PP2_TYPE_CRC32C {
			h.TLVs[i].Value = nil
		}
	}
	return h
}

// FuzzV1IPv6 checks the hand-written IPv6 parser of v1 lines against
// net/netip: they must agree on every input, except that zones and IPv4
// literals are not IPv6 addresses for a TCP6 line (2.1).
func FuzzV1IPv6(f *testing.F) {
	for _, s := range []string{
		"::", "::1", "1::", "1::2", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"::ffff:192.0.2.1", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
		"1:2:3:4:5:6:7:8:9", "1::2::3", ":1", "1:", "1:::2", "12345::", "fe80::1%eth0",
		"1.2.3.4", "::ffff:01.2.3.4", "::ffff:1.2.3", "ABCD:EF01::", "0:0:0:0:0:0:0:0", "1:2:3:4:5:6:7::",
		"::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseV1IPv6([]byte(s))
		want, err := netip.ParseAddr(s)
		wantOK := err == nil && want.Is6() && want.Zone() == "" && len(s) <= maxV1IPv6Len
		if ok != wantOK || ok && got != want {
			t.Fatalf("%q: got %v, %v; netip says %v, %v", s, got, ok, want, err)
		}
	})
}
