package clienthello

import (
	"crypto/tls"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	real, _ := capture(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}})
	msg := message(b, real)
	frag := fragment(msg, 100)
	// The worst a client can make a session buffer: a hello of
	// MaxHelloSize in one-byte records, one byte short.
	big := handshake(1, helloBody([]ext{sniExt("www.example.com"), {0x15, make([]byte, MaxHelloSize-len(handshake(1, helloBody([]ext{sniExt("www.example.com"), {0x15, nil}}))))}}))
	worst := fragment(big, 1)
	for _, c := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"complete", real, true},
		{"complete-fragmented", frag, true},
		{"incomplete-half", real[:len(real)/2], false},
		{"incomplete-header", real[:7], false},
		{"incomplete-fragmented", frag[:len(frag)-1], false},
		{"incomplete-1-byte-records-max", worst[:len(worst)-1], false},
		{"not-tls", []byte("GET / HTTP/1.1\r\n"), false},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if _, err := Parse(c.in); (err == nil) != c.ok {
					b.Fatal(err)
				}
			}
		})
	}
}
