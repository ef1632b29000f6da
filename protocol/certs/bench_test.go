package certs

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"
)

const benchCerts = 1000

// benchStore holds 1,000 ECDSA certificates: even ones with an exact
// name "host<i>.example.com", odd ones with a wildcard "*.w<i>.example.com".
func benchStore(b *testing.B) *Store {
	b.Helper()
	testKeys(b)
	s := NewStore()
	for i := 0; i < benchCerts; i++ {
		name := fmt.Sprintf("host%d.example.com", i)
		if i%2 == 1 {
			name = fmt.Sprintf("*.w%d.example.com", i)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)),
			Subject:      pkix.Name{CommonName: name},
			DNSNames:     []string{name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ecKey.Public(), ecKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Add(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: ecKey}); err != nil {
			b.Fatal(err)
		}
	}
	if s.Len() != benchCerts {
		b.Fatalf("Len = %d", s.Len())
	}
	return s
}

func benchLookup(b *testing.B, name, wantName string) {
	s := benchStore(b)
	h := helloModern()
	h.ServerName = name
	c, err := s.GetCertificate(h)
	if err != nil || c.Leaf.DNSNames[0] != wantName {
		b.Fatalf("GetCertificate(%q) = %v, %v", name, c.Leaf.DNSNames, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetCertificate(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCertificateExact(b *testing.B) {
	benchLookup(b, "host500.example.com", "host500.example.com")
}

func BenchmarkGetCertificateWildcard(b *testing.B) {
	benchLookup(b, "www.w501.example.com", "*.w501.example.com")
}

// BenchmarkGetCertificateMixedCase includes lower-casing into the stack
// buffer and the trailing dot.
func BenchmarkGetCertificateMixedCase(b *testing.B) {
	benchLookup(b, "WWW.W501.Example.COM.", "*.w501.example.com")
}

// BenchmarkGetCertificateChoice measures choosing between an ECDSA and
// an RSA certificate for the same name (SupportsCertificate calls).
func BenchmarkGetCertificateChoice(b *testing.B) {
	s := NewStore()
	if _, err := s.Add(newCert(b, certSpec{kind: kindRSA, names: []string{"both.example.com"}, notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(time.Hour)})); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Add(newCert(b, certSpec{names: []string{"both.example.com"}, notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(time.Hour)})); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hello *tls.ClientHelloInfo
	}{{"ECDSA", helloModern()}, {"RSAOnly", helloRSAOnly13()}} {
		b.Run(tc.name, func(b *testing.B) {
			tc.hello.ServerName = "both.example.com"
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.GetCertificate(tc.hello); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
