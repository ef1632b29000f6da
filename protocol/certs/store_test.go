package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExactAndWildcard(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	exact := ecCert(t, "a.example.com", "b.example.com")
	wild := ecCert(t, "*.example.com")
	mustAdd(t, s, def)
	mustAdd(t, s, exact)
	mustAdd(t, s, wild)

	assert.Equal(t, leafDER(&exact), leafDER(get(t, s, "a.example.com")))
	assert.Equal(t, leafDER(&exact), leafDER(get(t, s, "b.example.com")))
	// Exact beats wildcard; other one-label names take the wildcard.
	assert.Equal(t, leafDER(&wild), leafDER(get(t, s, "c.example.com")))
	assert.Equal(t, leafDER(&wild), leafDER(get(t, s, "www.example.com")))
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "default.test")))
}

func TestWildcardMatchesOneLabelOnly(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	wild := ecCert(t, "*.example.com")
	mustAdd(t, s, def)
	mustAdd(t, s, wild)

	assert.Equal(t, leafDER(&wild), leafDER(get(t, s, "x.example.com")))
	for _, name := range []string{
		"a.b.example.com", // two labels
		"example.com",     // zero labels
		".example.com",    // empty label
		"xexample.com",
		"x.example.org",
		"com",
	} {
		assert.Equal(t, leafDER(&def), leafDER(get(t, s, name)), name)
	}
}

func TestDefaultForUnknownAndNoSNI(t *testing.T) {
	s := NewStore()
	first := ecCert(t, "first.test")
	second := ecCert(t, "second.test")
	mustAdd(t, s, first)
	mustAdd(t, s, second)

	// First added is the default.
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, "unknown.test")))
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, "")))
	c, err := s.GetCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&first), leafDER(c))
	c, err = s.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.Equal(t, leafDER(&first), leafDER(c))
	// A name reduced to nothing is no SNI either.
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, ".")))
	assert.Equal(t, leafDER(&second), leafDER(get(t, s, "second.test")))
}

func TestSetDefault(t *testing.T) {
	s := NewStore()
	first := ecCert(t, "first.test")
	second := ecCert(t, "second.test")
	id1 := mustAdd(t, s, first)
	id2 := mustAdd(t, s, second)

	require.ErrorIs(t, s.SetDefault("nope"), ErrNotFound)
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, "")))

	require.NoError(t, s.SetDefault(id2))
	assert.Equal(t, leafDER(&second), leafDER(get(t, s, "")))
	assert.Equal(t, leafDER(&second), leafDER(get(t, s, "unknown.test")))
	// Names still go to their own certificate.
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, "first.test")))

	// Adding more does not move the explicit default.
	third := ecCert(t, "third.test")
	mustAdd(t, s, third)
	assert.Equal(t, leafDER(&second), leafDER(get(t, s, "")))

	// Removing the explicit default falls back to the earliest added.
	require.NoError(t, s.Remove(id2))
	assert.Equal(t, leafDER(&first), leafDER(get(t, s, "")))
	require.NoError(t, s.Remove(id1))
	assert.Equal(t, leafDER(&third), leafDER(get(t, s, "")))
}

func TestEmptyStore(t *testing.T) {
	s := NewStore()
	_, err := s.GetCertificate(helloModern())
	require.ErrorIs(t, err, ErrNoCertificate)
	h := helloModern()
	h.ServerName = "a.example.com"
	_, err = s.GetCertificate(h)
	require.ErrorIs(t, err, ErrNoCertificate)

	id := mustAdd(t, s, ecCert(t, "a.example.com"))
	require.NoError(t, s.Remove(id))
	_, err = s.GetCertificate(h)
	require.ErrorIs(t, err, ErrNoCertificate)
	assert.Equal(t, 0, s.Len())
	assert.Empty(t, s.List())

	// The zero Store is an empty store ready for use.
	var zero Store
	_, err = zero.GetCertificate(h)
	require.ErrorIs(t, err, ErrNoCertificate)
	assert.Equal(t, 0, zero.Len())
	c := ecCert(t, "a.example.com")
	mustAdd(t, &zero, c)
	assert.Equal(t, leafDER(&c), leafDER(get(t, &zero, "")))
}

func TestCaseAndTrailingDot(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	// Names in the certificate are normalised too.
	exact := ecCert(t, "A.Example.COM")
	wild := ecCert(t, "*.Wild.Test")
	mustAdd(t, s, def)
	mustAdd(t, s, exact)
	mustAdd(t, s, wild)

	for _, name := range []string{"a.example.com", "A.EXAMPLE.COM", "a.Example.Com.", "A.EXAMPLE.COM."} {
		assert.Equal(t, leafDER(&exact), leafDER(get(t, s, name)), name)
	}
	for _, name := range []string{"x.wild.test", "X.WILD.TEST", "x.Wild.Test."} {
		assert.Equal(t, leafDER(&wild), leafDER(get(t, s, name)), name)
	}
	// Only one trailing dot is removed.
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "a.example.com..")))
}

func TestLongAndNonASCIINames(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	mustAdd(t, s, def)
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	require.Len(t, long, 253)
	longC := ecCert(t, long)
	mustAdd(t, s, longC)
	assert.Equal(t, leafDER(&longC), leafDER(get(t, s, strings.ToUpper(long)+".")))
	// Longer than a host name: the slow path, still matched like others.
	tooLong := "x" + long
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, tooLong)))
	// Non-ASCII: no such certificate (and crypto/x509 would refuse the
	// name in a SAN), but the lookup must work and fall back.
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "bücher.example")))
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "BÜCHER.example.")))
}

func TestKeyTypeChoice(t *testing.T) {
	s := NewStore()
	rsaC := rsaCert(t, "both.example.com", "*.both.test")
	ecC := ecCert(t, "both.example.com", "*.both.test")
	// RSA added first, so order of addition does not explain the result.
	mustAdd(t, s, rsaC)
	mustAdd(t, s, ecC)
	s.Now = fixedClock(baseTime)

	cases := []struct {
		name  string
		hello *tls.ClientHelloInfo
		want  *tls.Certificate
	}{
		{"modern client prefers ECDSA", helloModern(), &ecC},
		{"TLS 1.3 RSA-only signature schemes", helloRSAOnly13(), &rsaC},
		{"TLS 1.2 ECDHE_RSA suites only", helloRSASuites12(), &rsaC},
		{"TLS 1.2 without the P-256 curve", helloNoP256TLS12(), &rsaC},
		{"nothing supported: best valid anyway", helloNothing(), &ecC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"both.example.com", "x.both.test"} {
				tc.hello.ServerName = name
				c, err := s.GetCertificate(tc.hello)
				require.NoError(t, err)
				assert.Equal(t, leafDER(tc.want), leafDER(c), name)
			}
		})
	}

	// The hellos themselves agree with the standard library's checks.
	assert.NoError(t, helloModern().SupportsCertificate(&ecC))
	assert.NoError(t, helloModern().SupportsCertificate(&rsaC))
	assert.Error(t, helloRSAOnly13().SupportsCertificate(&ecC))
	assert.NoError(t, helloRSAOnly13().SupportsCertificate(&rsaC))
	assert.Error(t, helloRSASuites12().SupportsCertificate(&ecC))
	assert.Error(t, helloNoP256TLS12().SupportsCertificate(&ecC))
	assert.NoError(t, helloNoP256TLS12().SupportsCertificate(&rsaC))
	assert.Error(t, helloNothing().SupportsCertificate(&ecC))
	assert.Error(t, helloNothing().SupportsCertificate(&rsaC))
}

func TestValidBeatsInvalid(t *testing.T) {
	s := NewStore()
	s.Now = fixedClock(baseTime)
	valid := newCert(t, certSpec{names: []string{"v.example.com"},
		notBefore: baseTime.Add(-time.Hour), notAfter: baseTime.Add(24 * time.Hour)})
	expired := newCert(t, certSpec{names: []string{"v.example.com"},
		notBefore: baseTime.Add(-48 * time.Hour), notAfter: baseTime.Add(-time.Hour)})
	// Not yet valid, and expiring much later than the valid one.
	future := newCert(t, certSpec{names: []string{"v.example.com"},
		notBefore: baseTime.Add(time.Hour), notAfter: baseTime.Add(365 * 24 * time.Hour)})
	mustAdd(t, s, future)
	mustAdd(t, s, expired)
	mustAdd(t, s, valid)

	assert.Equal(t, leafDER(&valid), leafDER(get(t, s, "v.example.com")))

	// Validity comes before key type: a valid RSA certificate beats an
	// expired ECDSA one for a client that supports both.
	s2 := NewStore()
	s2.Now = fixedClock(baseTime)
	rsaValid := newCert(t, certSpec{kind: kindRSA, names: []string{"k.example.com"}})
	ecExpired := newCert(t, certSpec{names: []string{"k.example.com"},
		notBefore: baseTime.Add(-48 * time.Hour), notAfter: baseTime.Add(-time.Second)})
	mustAdd(t, s2, ecExpired)
	mustAdd(t, s2, rsaValid)
	assert.Equal(t, leafDER(&rsaValid), leafDER(get(t, s2, "k.example.com")))

	// The clock is consulted at every lookup.
	now := baseTime
	var mu sync.Mutex
	s.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	mu.Lock()
	now = baseTime.Add(2 * time.Hour) // future is valid now, longer-lived than valid
	mu.Unlock()
	assert.Equal(t, leafDER(&future), leafDER(get(t, s, "v.example.com")))
	mu.Lock()
	now = baseTime.Add(-30 * time.Hour) // only expired is valid
	mu.Unlock()
	assert.Equal(t, leafDER(&expired), leafDER(get(t, s, "v.example.com")))
	mu.Lock()
	now = baseTime.Add(400 * 24 * time.Hour) // nothing valid: latest NotAfter
	mu.Unlock()
	assert.Equal(t, leafDER(&future), leafDER(get(t, s, "v.example.com")))

	// Boundaries are inclusive.
	s.Now = fixedClock(baseTime.Add(24 * time.Hour)) // valid.NotAfter; future valid too
	assert.Equal(t, leafDER(&future), leafDER(get(t, s, "v.example.com")))
	s.Now = fixedClock(baseTime.Add(-time.Hour)) // expired.NotAfter == valid.NotBefore
	assert.Equal(t, leafDER(&valid), leafDER(get(t, s, "v.example.com")))
}

func TestInvalidButSupportedBeforeValidUnsupported(t *testing.T) {
	// Order is (valid, key type, NotAfter) filtered by support, so an
	// RSA-only client gets the usable expired RSA certificate rather than
	// the valid ECDSA one it cannot use.
	s := NewStore()
	s.Now = fixedClock(baseTime)
	ecValid := ecCert(t, "m.example.com")
	rsaExpired := newCert(t, certSpec{kind: kindRSA, names: []string{"m.example.com"},
		notBefore: baseTime.Add(-48 * time.Hour), notAfter: baseTime.Add(-time.Hour)})
	mustAdd(t, s, ecValid)
	mustAdd(t, s, rsaExpired)

	h := helloRSAOnly13()
	h.ServerName = "m.example.com"
	c, err := s.GetCertificate(h)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&rsaExpired), leafDER(c))
	assert.Equal(t, leafDER(&ecValid), leafDER(get(t, s, "m.example.com")))

	// Neither usable: the best valid one.
	h = helloNothing()
	h.ServerName = "m.example.com"
	c, err = s.GetCertificate(h)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&ecValid), leafDER(c))
}

func TestLatestNotAfterWins(t *testing.T) {
	s := NewStore()
	s.Now = fixedClock(baseTime)
	short := newCert(t, certSpec{names: []string{"r.example.com", "*.r.test"}, notAfter: baseTime.Add(10 * 24 * time.Hour)})
	long := newCert(t, certSpec{names: []string{"r.example.com", "*.r.test"}, notAfter: baseTime.Add(80 * 24 * time.Hour)})
	mid := newCert(t, certSpec{names: []string{"r.example.com", "*.r.test"}, notAfter: baseTime.Add(40 * 24 * time.Hour)})
	mustAdd(t, s, short)
	idLong := mustAdd(t, s, long)
	mustAdd(t, s, mid)

	assert.Equal(t, leafDER(&long), leafDER(get(t, s, "r.example.com")))
	assert.Equal(t, leafDER(&long), leafDER(get(t, s, "a.r.test")))
	require.NoError(t, s.Remove(idLong))
	assert.Equal(t, leafDER(&mid), leafDER(get(t, s, "r.example.com")))
	assert.Equal(t, leafDER(&mid), leafDER(get(t, s, "a.r.test")))

	// Among RSA candidates too, for a client that needs RSA.
	rsaShort := newCert(t, certSpec{kind: kindRSA, names: []string{"r.example.com"}, notAfter: baseTime.Add(10 * 24 * time.Hour)})
	rsaLong := newCert(t, certSpec{kind: kindRSA, names: []string{"r.example.com"}, notAfter: baseTime.Add(60 * 24 * time.Hour)})
	mustAdd(t, s, rsaLong)
	mustAdd(t, s, rsaShort)
	h := helloRSAOnly13()
	h.ServerName = "r.example.com"
	c, err := s.GetCertificate(h)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&rsaLong), leafDER(c))
	// ECDSA still first for capable clients, even though rsaLong expires later.
	assert.Equal(t, leafDER(&mid), leafDER(get(t, s, "r.example.com")))
}

func TestCNOnly(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	mustAdd(t, s, def)
	cn := newCert(t, certSpec{cn: "CN.Example.com"})
	id := mustAdd(t, s, cn)
	assert.Equal(t, leafDER(&cn), leafDER(get(t, s, "cn.example.com")))

	// The CN is ignored when there are SANs.
	both := newCert(t, certSpec{cn: "ignored.example.com", names: []string{"san.example.com"}})
	mustAdd(t, s, both)
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "ignored.example.com")))
	assert.Equal(t, leafDER(&both), leafDER(get(t, s, "san.example.com")))

	// Key-type choice works for CN-only certificates (whose name
	// crypto/x509's VerifyHostname no longer matches).
	cnRSA := newCert(t, certSpec{kind: kindRSA, cn: "cn.example.com"})
	mustAdd(t, s, cnRSA)
	h := helloRSAOnly13()
	h.ServerName = "cn.example.com"
	c, err := s.GetCertificate(h)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&cnRSA), leafDER(c))
	assert.Equal(t, leafDER(&cn), leafDER(get(t, s, "cn.example.com")))

	for _, info := range s.List() {
		if info.ID == id {
			assert.Equal(t, []string{"cn.example.com"}, info.Names)
		}
	}
}

func TestNoNames(t *testing.T) {
	// No SAN and no CN: only reachable as the default.
	s := NewStore()
	anon := newCert(t, certSpec{})
	id := mustAdd(t, s, anon)
	assert.Equal(t, leafDER(&anon), leafDER(get(t, s, "")))
	assert.Equal(t, leafDER(&anon), leafDER(get(t, s, "whatever.test")))
	l := s.List()
	require.Len(t, l, 1)
	assert.Equal(t, id, l[0].ID)
	assert.Empty(t, l[0].Names)
}

func TestList(t *testing.T) {
	s := NewStore()
	ec := newCert(t, certSpec{names: []string{"A.example.com", "*.example.com", "a.example.com."},
		notBefore: baseTime.Add(-time.Hour), notAfter: baseTime.Add(time.Hour)})
	rs := rsaCert(t, "rsa.example.com")
	idEC := mustAdd(t, s, ec)
	idRSA := mustAdd(t, s, rs)

	sum := sha256.Sum256(ec.Certificate[0])
	assert.Equal(t, hex.EncodeToString(sum[:]), idEC)
	assert.Equal(t, 2, s.Len())

	l := s.List()
	require.Len(t, l, 2)
	assert.Equal(t, Info{
		ID:        idEC,
		Names:     []string{"a.example.com", "*.example.com"}, // normalised, deduplicated
		NotBefore: baseTime.Add(-time.Hour),
		NotAfter:  baseTime.Add(time.Hour),
		KeyType:   "ECDSA",
		Default:   true,
	}, normaliseInfo(l[0]))
	assert.Equal(t, idRSA, l[1].ID)
	assert.Equal(t, []string{"rsa.example.com"}, l[1].Names)
	assert.Equal(t, "RSA", l[1].KeyType)
	assert.False(t, l[1].Default)

	require.NoError(t, s.SetDefault(idRSA))
	l = s.List()
	assert.False(t, l[0].Default)
	assert.True(t, l[1].Default)

	// List returns copies.
	l[0].Names[0] = "mutated"
	assert.Equal(t, "a.example.com", s.List()[0].Names[0])
}

func normaliseInfo(i Info) Info {
	i.NotBefore = i.NotBefore.UTC()
	i.NotAfter = i.NotAfter.UTC()
	return i
}

func TestAddFillsLeafAndCopies(t *testing.T) {
	s := NewStore()
	c := ecCert(t, "leaf.example.com")
	require.Nil(t, c.Leaf)
	mustAdd(t, s, c)
	got := get(t, s, "leaf.example.com")
	require.NotNil(t, got.Leaf)
	assert.Equal(t, []string{"leaf.example.com"}, got.Leaf.DNSNames)
	assert.Nil(t, c.Leaf, "caller's value untouched")

	// A Leaf supplied by the caller is used (and checked).
	c2 := ecCert(t, "leaf2.example.com")
	got2 := ecCert(t, "other.example.com")
	mustAdd(t, s, got2)
	c2.Leaf = get(t, s, "other.example.com").Leaf
	_, err := s.Add(c2)
	require.Error(t, err)
}

func TestAddErrors(t *testing.T) {
	s := NewStore()
	good := ecCert(t, "good.example.com")

	_, err := s.Add(tls.Certificate{})
	assert.Error(t, err)

	noKey := good
	noKey.PrivateKey = nil
	_, err = s.Add(noKey)
	assert.Error(t, err)

	garbage := tls.Certificate{Certificate: [][]byte{[]byte("not DER")}, PrivateKey: good.PrivateKey}
	_, err = s.Add(garbage)
	assert.Error(t, err)

	testKeys(t)
	wrongKey := good
	wrongKey.PrivateKey = ecKey2
	_, err = s.Add(wrongKey)
	assert.ErrorContains(t, err, "does not match")

	wrongType := good
	wrongType.PrivateKey = rsaKey
	_, err = s.Add(wrongType)
	assert.Error(t, err)

	notSigner := good
	notSigner.PrivateKey = "key"
	_, err = s.Add(notSigner)
	assert.Error(t, err)

	assert.Equal(t, 0, s.Len())

	id := mustAdd(t, s, good)
	id2, err := s.Add(good)
	assert.ErrorIs(t, err, ErrExists)
	assert.Equal(t, id, id2)
	assert.Equal(t, 1, s.Len())

	assert.ErrorIs(t, s.Remove("nope"), ErrNotFound)
}

func TestAddPEM(t *testing.T) {
	s := NewStore()
	c := ecCert(t, "pem.example.com")
	id, err := s.AddPEM(certPEM(c), keyPEM(t, c))
	require.NoError(t, err)
	assert.Equal(t, leafDER(&c), leafDER(get(t, s, "pem.example.com")))

	r := rsaCert(t, "pem-rsa.example.com")
	_, err = s.AddPEM(certPEM(r), keyPEM(t, r))
	require.NoError(t, err)

	_, err = s.AddPEM([]byte("not pem"), keyPEM(t, c))
	assert.Error(t, err)
	_, err = s.AddPEM(certPEM(c), []byte("not pem"))
	assert.Error(t, err)
	_, err = s.AddPEM(nil, nil)
	assert.Error(t, err)
	// Mismatched key: certificate of one key, PEM key of another.
	other := ecCert(t, "other.example.com")
	other.PrivateKey = ecKey2
	_, err = s.AddPEM(certPEM(c), keyPEM(t, other))
	assert.Error(t, err)
	_, err = s.AddPEM(certPEM(c), keyPEM(t, r))
	assert.Error(t, err)
	// Corrupted DER inside valid PEM.
	bad := certPEM(tls.Certificate{Certificate: [][]byte{[]byte("garbage")}})
	_, err = s.AddPEM(bad, keyPEM(t, c))
	assert.Error(t, err)

	assert.Equal(t, 2, s.Len())
	_, err = s.AddPEM(certPEM(c), keyPEM(t, c))
	assert.ErrorIs(t, err, ErrExists)
	require.NoError(t, s.Remove(id))
	assert.Equal(t, 1, s.Len())
}

func TestRemove(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	a := ecCert(t, "a.example.com", "*.shared.test")
	b := ecCert(t, "b.example.com", "*.shared.test")
	mustAdd(t, s, def)
	idA := mustAdd(t, s, a)
	idB := mustAdd(t, s, b)
	s.Now = fixedClock(baseTime)

	require.NoError(t, s.Remove(idA))
	assert.ErrorIs(t, s.Remove(idA), ErrNotFound)
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "a.example.com")))
	assert.Equal(t, leafDER(&b), leafDER(get(t, s, "x.shared.test")))
	require.NoError(t, s.Remove(idB))
	assert.Equal(t, leafDER(&def), leafDER(get(t, s, "x.shared.test")))
	assert.Equal(t, 1, s.Len())
	// Indexes are cleaned up.
	sn := s.load()
	assert.Len(t, sn.exact, 1)
	assert.Empty(t, sn.wild)
}

func TestReplace(t *testing.T) {
	s := NewStore()
	s.Now = fixedClock(baseTime)
	old := ecCert(t, "r.example.com", "gone.example.com")
	other := ecCert(t, "other.example.com")
	idOld := mustAdd(t, s, old)
	idOther := mustAdd(t, s, other)

	prev := get(t, s, "r.example.com")

	repl := rsaCert(t, "r.example.com", "new.example.com")
	idNew, err := s.Replace(idOld, repl)
	require.NoError(t, err)
	assert.NotEqual(t, idOld, idNew)
	assert.Equal(t, 2, s.Len())
	assert.Equal(t, leafDER(&repl), leafDER(get(t, s, "r.example.com")))
	assert.Equal(t, leafDER(&repl), leafDER(get(t, s, "new.example.com")))
	// Old names no longer covered; the replacement took the old one's
	// place as (implicit) default.
	assert.Equal(t, leafDER(&repl), leafDER(get(t, s, "gone.example.com")))
	assert.Equal(t, leafDER(&repl), leafDER(get(t, s, "")))
	assert.Equal(t, idNew, s.List()[0].ID)
	// What an old handshake got is untouched.
	assert.Equal(t, leafDER(&old), leafDER(prev))

	_, err = s.Replace(idOld, ecCert(t, "x.test"))
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = s.Replace(idNew, other)
	assert.ErrorIs(t, err, ErrExists)
	_, err = s.Replace(idNew, tls.Certificate{})
	assert.Error(t, err)
	assert.Equal(t, leafDER(&repl), leafDER(get(t, s, "r.example.com")))

	// An explicit default stays explicit through Replace.
	require.NoError(t, s.SetDefault(idOther))
	other2 := ecCert(t, "other.example.com")
	idOther2, err := s.Replace(idOther, other2)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&other2), leafDER(get(t, s, "")))
	assert.Equal(t, leafDER(&other2), leafDER(get(t, s, "unknown.test")))
	assert.True(t, s.List()[1].Default)

	// Replacing by the same leaf (e.g. a new chain) is allowed.
	withChain := other2
	withChain.Certificate = append([][]byte{other2.Certificate[0]}, old.Certificate[0])
	idSame, err := s.Replace(idOther2, withChain)
	require.NoError(t, err)
	assert.Equal(t, idOther2, idSame)
	assert.Len(t, get(t, s, "other.example.com").Certificate, 2)
	assert.Equal(t, 2, s.Len())
}

// TestConcurrentChanges runs lookups from 8 goroutines while the store
// is changed; run with -race.
func TestConcurrentChanges(t *testing.T) {
	s := NewStore()
	base := ecCert(t, "base.example.com", "*.example.com")
	mustAdd(t, s, base)

	const pool = 12
	certs := make([]tls.Certificate, pool)
	for i := range certs {
		if i%3 == 0 {
			certs[i] = rsaCert(t, "a.example.com", fmt.Sprintf("n%d.example.com", i))
		} else {
			certs[i] = ecCert(t, "a.example.com", "*.wild.test", fmt.Sprintf("n%d.example.com", i))
		}
	}

	var stop atomic.Bool
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	names := []string{"a.example.com", "x.wild.test", "n1.example.com", "n3.example.com", "zzz.example.com", "unknown.test", "", "A.EXAMPLE.COM."}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			hellos := []*tls.ClientHelloInfo{helloModern(), helloRSAOnly13(), helloRSASuites12()}
			for i := 0; !stop.Load(); i++ {
				h := hellos[(i+g)%len(hellos)]
				h.ServerName = names[(i+g)%len(names)]
				c, err := s.GetCertificate(h)
				if err != nil || c == nil || len(c.Certificate) == 0 || c.PrivateKey == nil {
					errs <- fmt.Errorf("GetCertificate(%q) = %v, %v", h.ServerName, c, err)
					return
				}
				_ = s.Len()
				calls.Add(1)
			}
		}(g)
	}

	ids := make([]string, pool)
	deadline := time.Now().Add(300 * time.Millisecond)
	for round := 0; time.Now().Before(deadline) || round < 20; round++ {
		for i := range certs {
			if ids[i] == "" {
				id, err := s.Add(certs[i])
				require.NoError(t, err)
				ids[i] = id
			}
		}
		// Rotate: replace i by i+1 where i+1 is absent, remove some, set defaults.
		i := round % pool
		j := (round + 1) % pool
		if ids[j] != "" {
			require.NoError(t, s.Remove(ids[j]))
			ids[j] = ""
		}
		id, err := s.Replace(ids[i], certs[j])
		require.NoError(t, err)
		ids[i], ids[j] = "", id
		require.NoError(t, s.SetDefault(id))
		for k := range ids {
			if ids[k] != "" && k%2 == round%2 {
				require.NoError(t, s.Remove(ids[k]))
				ids[k] = ""
			}
		}
		_ = s.List()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Positive(t, calls.Load())
}

func TestLookupDoesNotAllocate(t *testing.T) {
	s := NewStore()
	mustAdd(t, s, ecCert(t, "default.test"))
	mustAdd(t, s, ecCert(t, "a.example.com"))
	mustAdd(t, s, ecCert(t, "*.wild.test"))
	for _, name := range []string{"a.example.com", "A.Example.COM.", "x.wild.test", "X.WILD.TEST.", "unknown.test", ""} {
		h := helloModern()
		h.ServerName = name
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := s.GetCertificate(h); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs, name)
	}
}
