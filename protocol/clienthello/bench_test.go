package clienthello

import (
	"crypto/tls"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	real, _ := capture(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}})
	msg := message(b, real)
	frag := fragment(msg, 100)
	// The most work an incomplete parse can take: a hello of MaxHelloSize
	// in MaxHelloRecords records, one byte short.
	big := handshake(1, helloBody([]ext{sniExt("www.example.com"), {0x15, make([]byte, MaxHelloSize-len(handshake(1, helloBody([]ext{sniExt("www.example.com"), {0x15, nil}}))))}}))
	worst := fragment(big, MaxHelloSize/MaxHelloRecords)
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"complete", real, nil},
		{"complete-fragmented", frag, nil},
		{"incomplete-half", real[:len(real)/2], ErrIncomplete},
		{"incomplete-header", real[:7], ErrIncomplete},
		{"incomplete-fragmented", frag[:len(frag)-1], ErrIncomplete},
		{"incomplete-1024-records", worst[:len(worst)-1], ErrIncomplete},
		{"not-tls", []byte("GET / HTTP/1.1\r\n"), ErrNotTLS},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				if _, err := Parse(c.in); err != c.want {
					b.Fatal(err)
				}
			}
		})
	}
}
