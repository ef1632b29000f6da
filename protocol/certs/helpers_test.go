package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// baseTime is the fixed "now" of the tests that inject a clock. x509
// encodes validity to the second, so it is a whole second.
var baseTime = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// Keys are generated once per test binary: RSA 2048 generation is slow,
// and a key can be shared by any number of distinct certificates.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	ecKey2   *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ecKey2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
	})
}

type keyKind int

const (
	kindECDSA keyKind = iota
	kindRSA
)

// certSpec describes a self-signed test certificate.
type certSpec struct {
	kind      keyKind
	names     []string // DNS SANs
	cn        string
	notBefore time.Time // zero: baseTime - 24h
	notAfter  time.Time // zero: baseTime + 90 days
}

// newCert returns a self-signed certificate (Leaf left nil) and its DER.
func newCert(t testing.TB, spec certSpec) tls.Certificate {
	t.Helper()
	testKeys(t)
	var key crypto.Signer = ecKey
	usage := x509.KeyUsageDigitalSignature
	if spec.kind == kindRSA {
		key = rsaKey
		usage |= x509.KeyUsageKeyEncipherment
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = baseTime.Add(-24 * time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = baseTime.Add(90 * 24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: spec.cn},
		DNSNames:              spec.names,
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func ecCert(t testing.TB, names ...string) tls.Certificate {
	return newCert(t, certSpec{kind: kindECDSA, names: names})
}

func rsaCert(t testing.TB, names ...string) tls.Certificate {
	return newCert(t, certSpec{kind: kindRSA, names: names})
}

func certPEM(c tls.Certificate) []byte {
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

func keyPEM(t testing.TB, c tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// mustAdd adds c and returns its ID.
func mustAdd(t testing.TB, s *Store, c tls.Certificate) string {
	t.Helper()
	id, err := s.Add(c)
	require.NoError(t, err)
	require.Len(t, id, 64)
	return id
}

// leafDER identifies a selected certificate.
func leafDER(c *tls.Certificate) []byte { return c.Certificate[0] }

// get calls GetCertificate for a name with an ECDSA-capable TLS 1.3
// hello and requires success.
func get(t testing.TB, s *Store, name string) *tls.Certificate {
	t.Helper()
	h := helloModern()
	h.ServerName = name
	c, err := s.GetCertificate(h)
	require.NoError(t, err)
	require.NotNil(t, c)
	return c
}

// Realistic ClientHello contents, as seen by GetCertificate.

var sigSchemesAll = []tls.SignatureScheme{
	tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256, tls.PKCS1WithSHA256,
	tls.ECDSAWithP384AndSHA384, tls.PSSWithSHA384, tls.PKCS1WithSHA384,
	tls.PSSWithSHA512, tls.PKCS1WithSHA512,
}

var sigSchemesRSA = []tls.SignatureScheme{
	tls.PSSWithSHA256, tls.PKCS1WithSHA256,
	tls.PSSWithSHA384, tls.PKCS1WithSHA384,
	tls.PSSWithSHA512, tls.PKCS1WithSHA512,
}

var suitesTLS13 = []uint16{
	tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256,
}

var suitesTLS12All = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

var suitesTLS12RSA = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// helloModern is a browser-like TLS 1.3/1.2 hello that accepts ECDSA and RSA.
func helloModern() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites:      append(append([]uint16{}, suitesTLS13...), suitesTLS12All...),
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
		SupportedPoints:   []uint8{0},
		SignatureSchemes:  sigSchemesAll,
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// helloRSAOnly13 is a TLS 1.3 hello whose signature_algorithms list only
// RSA schemes.
func helloRSAOnly13() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites:      suitesTLS13,
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SupportedPoints:   []uint8{0},
		SignatureSchemes:  sigSchemesRSA,
		SupportedVersions: []uint16{tls.VersionTLS13},
	}
}

// helloRSASuites12 is a TLS 1.2-only hello offering only ECDHE_RSA
// cipher suites (its signature schemes would allow ECDSA).
func helloRSASuites12() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites:      suitesTLS12RSA,
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		SupportedPoints:   []uint8{0},
		SignatureSchemes:  sigSchemesAll,
		SupportedVersions: []uint16{tls.VersionTLS12},
	}
}

// helloNoP256TLS12 is a TLS 1.2 hello with ECDSA suites but no P-256
// curve: a P-256 certificate is unusable.
func helloNoP256TLS12() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites:      suitesTLS12All,
		SupportedCurves:   []tls.CurveID{tls.X25519},
		SupportedPoints:   []uint8{0},
		SignatureSchemes:  sigSchemesAll,
		SupportedVersions: []uint16{tls.VersionTLS12},
	}
}

// helloNothing supports neither key type (a TLS 1.3 hello whose only
// signature scheme is Ed25519).
func helloNothing() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites:      suitesTLS13,
		SupportedCurves:   []tls.CurveID{tls.X25519},
		SignatureSchemes:  []tls.SignatureScheme{tls.Ed25519},
		SupportedVersions: []uint16{tls.VersionTLS13},
	}
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }
