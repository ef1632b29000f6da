package proxyproto

import "testing"

func BenchmarkParseV1(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"tcp4", "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{"tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := []byte(c.in)
			var h Header
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := ParseInto(&h, in, ParseOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseV2(b *testing.B) {
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"tcp4+2tlv", v2(0x21, 0x11, append(tcp4Body(), tlvBytes(PP2_TYPE_ALPN, "h2"), tlvBytes(PP2_TYPE_AUTHORITY, "example.com"))...)},
		{"tcp4+crc32c", validV2()[3].in},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := Header{TLVs: make([]TLV, 0, 4)}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if _, err := ParseInto(&h, c.in, ParseOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendV2(b *testing.B) {
	h := NewTCP(ap("192.0.2.1:41234"), ap("198.51.100.1:443"))
	h.TLVs = []TLV{{PP2_TYPE_ALPN, []byte("h2")}, {PP2_TYPE_AUTHORITY, []byte("example.com")}}
	dst := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		out, err := h.AppendV2(dst[:0])
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
}

func BenchmarkAppendV1(b *testing.B) {
	h := NewTCP(ap("192.0.2.1:41234"), ap("198.51.100.1:443"))
	dst := make([]byte, 0, MaxV1Len)
	b.ReportAllocs()
	for b.Loop() {
		out, err := h.AppendV1(dst[:0])
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
}
