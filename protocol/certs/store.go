package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the store. Parse and validation failures of
// [Store.Add] and [Store.AddPEM] are other errors, prefixed "certs:".
var (
	// ErrNotFound reports an ID that names no certificate of the store.
	ErrNotFound = errors.New("certs: certificate not found")
	// ErrExists reports the addition of a certificate already present
	// (same leaf, hence same ID).
	ErrExists = errors.New("certs: certificate already present")
	// ErrNoCertificate is returned by [Store.GetCertificate] when the
	// store is empty.
	ErrNoCertificate = errors.New("certs: no certificate available")
)

// maxNameLen is the longest host name (RFC 1035, without the trailing
// dot) that lookups lower-case into a stack buffer.
const maxNameLen = 253

// Info describes one certificate of the store, as reported by
// [Store.List].
type Info struct {
	// ID is the lower-case hex SHA-256 of the leaf's DER encoding.
	ID string
	// Names are the names the certificate is indexed under, lower-cased,
	// in the order of the leaf (wildcards as "*.example.com").
	Names []string
	// NotBefore and NotAfter are the leaf's validity window.
	NotBefore, NotAfter time.Time
	// KeyType is "ECDSA", "RSA", "Ed25519" or "unknown".
	KeyType string
	// Default reports whether it is the current default certificate.
	Default bool
}

// Store is a set of certificates indexed by SNI name. The zero value is
// an empty store ready for use, like the result of [NewStore]. A Store
// must not be copied after first use. All methods are safe for
// concurrent use; [Store.GetCertificate] takes no lock.
type Store struct {
	// Now is the clock used to tell valid certificates from expired and
	// not-yet-valid ones. Nil means [time.Now]. Set it before the store
	// is shared; it is read without synchronisation.
	Now func() time.Time

	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[snapshot]
	seq  uint64 // order of addition, under mu
}

// entry is one certificate with what selection needs, immutable once
// published.
type entry struct {
	id        string
	cert      *tls.Certificate
	names     []string
	notBefore time.Time
	notAfter  time.Time
	keyType   string
	rank      int    // key-type preference, lower first
	seq       uint64 // order of addition, lower first
}

func (e *entry) validAt(now time.Time) bool {
	return !now.Before(e.notBefore) && !now.After(e.notAfter)
}

// snapshot is an immutable view of the store. Writers build a new one
// sharing the unchanged parts (entries, untouched candidate slices).
type snapshot struct {
	byID  map[string]*entry
	order []*entry            // order of addition (Replace keeps the slot)
	exact map[string][]*entry // name -> candidates, sorted by preference
	wild  map[string][]*entry // "example.com" for "*.example.com" -> candidates
	def   *entry              // resolved default, nil when empty
	// explicitDef is the ID given to SetDefault, "" if none.
	explicitDef string
}

var emptySnapshot = &snapshot{
	byID:  map[string]*entry{},
	exact: map[string][]*entry{},
	wild:  map[string][]*entry{},
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{}
	s.snap.Store(emptySnapshot)
	return s
}

func (s *Store) load() *snapshot {
	if sn := s.snap.Load(); sn != nil {
		return sn
	}
	return emptySnapshot
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Add indexes cert under the DNS names of its leaf and returns its ID.
// cert.Leaf is parsed from cert.Certificate[0] when nil (and must match
// it when set); the private key must match the leaf's public key. The
// store keeps its own copy of the tls.Certificate value (the slices and
// key it refers to are shared and must not be modified afterwards). If
// no default was set and the store was empty, cert becomes the default.
// Adding a certificate already present returns its ID and [ErrExists].
func (s *Store) Add(cert tls.Certificate) (id string, err error) {
	e, err := newEntry(cert)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	if _, ok := old.byID[e.id]; ok {
		return e.id, ErrExists
	}
	s.seq++
	e.seq = s.seq
	sn := old.clone()
	sn.byID[e.id] = e
	sn.order = append(sn.order, e)
	sn.index(e)
	sn.resolveDefault()
	s.snap.Store(sn)
	return e.id, nil
}

// AddPEM parses a PEM certificate chain (leaf first) and its PEM private
// key, as [tls.X509KeyPair] does, and adds them with [Store.Add].
func (s *Store) AddPEM(certPEM, keyPEM []byte) (string, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", fmt.Errorf("certs: %w", err)
	}
	return s.Add(cert)
}

// Remove deletes the certificate with the given ID. If it was the
// default, the default falls back to the earliest added certificate
// left. Handshakes already past certificate selection are unaffected.
func (s *Store) Remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	e, ok := old.byID[id]
	if !ok {
		return ErrNotFound
	}
	sn := old.clone()
	delete(sn.byID, id)
	sn.order = slices.DeleteFunc(sn.order, func(x *entry) bool { return x == e })
	sn.unindex(e)
	if sn.explicitDef == id {
		sn.explicitDef = ""
	}
	sn.resolveDefault()
	s.snap.Store(sn)
	return nil
}

// Replace atomically swaps the certificate oldID for cert and returns
// the new ID: handshakes that start after Replace returns see only the
// new certificate, those in flight and established connections keep the
// old one. The replacement inherits the old one's default role (see the
// package documentation). Replacing a certificate by itself (same leaf,
// e.g. a new chain) is allowed; replacing it by another certificate
// already present fails with [ErrExists]. On error nothing changes.
func (s *Store) Replace(oldID string, cert tls.Certificate) (string, error) {
	e, err := newEntry(cert)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	prev, ok := old.byID[oldID]
	if !ok {
		return "", ErrNotFound
	}
	if _, ok := old.byID[e.id]; ok && e.id != oldID {
		return e.id, ErrExists
	}
	e.seq = prev.seq // takes the old one's place in the order of addition
	sn := old.clone()
	delete(sn.byID, oldID)
	sn.byID[e.id] = e
	for i, x := range sn.order {
		if x == prev {
			sn.order[i] = e
			break
		}
	}
	sn.unindex(prev)
	sn.index(e)
	if sn.explicitDef == oldID {
		sn.explicitDef = e.id
	}
	sn.resolveDefault()
	s.snap.Store(sn)
	return e.id, nil
}

// SetDefault makes the certificate id the one answering handshakes
// without SNI or for names no certificate covers. Without a call to
// SetDefault, the earliest added certificate is the default.
func (s *Store) SetDefault(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	if _, ok := old.byID[id]; !ok {
		return ErrNotFound
	}
	// Only the default changes: share the maps and slices.
	sn := *old
	sn.explicitDef = id
	sn.resolveDefault()
	s.snap.Store(&sn)
	return nil
}

// Len returns the number of certificates in the store.
func (s *Store) Len() int { return len(s.load().order) }

// List describes the certificates of the store, in order of addition.
func (s *Store) List() []Info {
	sn := s.load()
	out := make([]Info, 0, len(sn.order))
	for _, e := range sn.order {
		out = append(out, Info{
			ID:        e.id,
			Names:     slices.Clone(e.names),
			NotBefore: e.notBefore,
			NotAfter:  e.notAfter,
			KeyType:   e.keyType,
			Default:   e == sn.def,
		})
	}
	return out
}

// GetCertificate returns the certificate for a ClientHello, following the
// selection rules of the package documentation. It has the signature of
// [tls.Config.GetCertificate]. A nil hello is treated as one without SNI.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	sn := s.load()
	if sn.def == nil {
		return nil, ErrNoCertificate
	}
	if hello == nil || hello.ServerName == "" {
		return sn.def.cert, nil
	}
	cands := sn.lookup(hello.ServerName)
	switch len(cands) {
	case 0:
		return sn.def.cert, nil
	case 1:
		return cands[0].cert, nil
	}
	return s.choose(cands, hello).cert, nil
}

// choose applies the preference order to several candidates, sorted by
// key type, NotAfter and addition already.
func (s *Store) choose(cands []*entry, hello *tls.ClientHelloInfo) *entry {
	now := s.now()
	// The index matched the name; skip SupportsCertificate's hostname
	// check (which ignores the CN and allocates) by clearing it on a copy.
	h := *hello
	h.ServerName = ""
	var bestValid *entry
	for _, e := range cands {
		if !e.validAt(now) {
			continue
		}
		if bestValid == nil {
			bestValid = e
		}
		if h.SupportsCertificate(e.cert) == nil {
			return e
		}
	}
	for _, e := range cands {
		if !e.validAt(now) && h.SupportsCertificate(e.cert) == nil {
			return e
		}
	}
	if bestValid != nil {
		return bestValid
	}
	return cands[0]
}

// lookup returns the candidates for a server name: exact match, else
// wildcard match, else nil.
func (sn *snapshot) lookup(name string) []*entry {
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	if n == 0 || n > maxNameLen {
		return sn.lookupSlow(name[:n])
	}
	var buf [maxNameLen]byte
	for i := 0; i < n; i++ {
		c := name[i]
		if c >= 0x80 {
			return sn.lookupSlow(name[:n])
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	b := buf[:n]
	if l, ok := sn.exact[string(b)]; ok {
		return l
	}
	if dot := bytes.IndexByte(b, '.'); dot > 0 {
		return sn.wild[string(b[dot+1:])]
	}
	return nil
}

// lookupSlow handles names that are not ASCII or too long for the stack
// buffer; such names are not valid host names, but are matched the same
// way.
func (sn *snapshot) lookupSlow(name string) []*entry {
	if name == "" {
		return nil
	}
	name = strings.ToLower(name)
	if l, ok := sn.exact[name]; ok {
		return l
	}
	if dot := strings.IndexByte(name, '.'); dot > 0 {
		return sn.wild[name[dot+1:]]
	}
	return nil
}

// clone copies the mutable parts of a snapshot; candidate slices are
// shared and replaced, never modified, by index and unindex.
func (sn *snapshot) clone() *snapshot {
	return &snapshot{
		byID:        maps.Clone(sn.byID),
		order:       slices.Clone(sn.order),
		exact:       maps.Clone(sn.exact),
		wild:        maps.Clone(sn.wild),
		explicitDef: sn.explicitDef,
	}
}

func (sn *snapshot) resolveDefault() {
	sn.def = nil
	if e, ok := sn.byID[sn.explicitDef]; ok && sn.explicitDef != "" {
		sn.def = e
		return
	}
	sn.explicitDef = ""
	if len(sn.order) > 0 {
		sn.def = sn.order[0]
	}
}

// indexKey tells which map and key a stored name goes to.
func (sn *snapshot) indexKey(name string) (map[string][]*entry, string) {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return sn.wild, rest
	}
	return sn.exact, name
}

func (sn *snapshot) index(e *entry) {
	for _, name := range e.names {
		m, k := sn.indexKey(name)
		old := m[k]
		l := make([]*entry, 0, len(old)+1)
		i, _ := slices.BinarySearchFunc(old, e, compareEntries)
		l = append(l, old[:i]...)
		l = append(l, e)
		l = append(l, old[i:]...)
		m[k] = l
	}
}

func (sn *snapshot) unindex(e *entry) {
	for _, name := range e.names {
		m, k := sn.indexKey(name)
		old := m[k]
		if len(old) <= 1 {
			delete(m, k)
			continue
		}
		l := make([]*entry, 0, len(old)-1)
		for _, x := range old {
			if x != e {
				l = append(l, x)
			}
		}
		m[k] = l
	}
}

// compareEntries orders candidates by key type, then latest NotAfter,
// then earliest addition. Validity depends on the time of the lookup and
// is applied there.
func compareEntries(a, b *entry) int {
	if a.rank != b.rank {
		return a.rank - b.rank
	}
	if c := b.notAfter.Compare(a.notAfter); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// newEntry validates a certificate and computes everything the index
// needs. Its seq is set by the caller.
func newEntry(cert tls.Certificate) (*entry, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("certs: empty certificate chain")
	}
	if cert.PrivateKey == nil {
		return nil, errors.New("certs: missing private key")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		leaf, err = x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("certs: parsing leaf certificate: %w", err)
		}
		cert.Leaf = leaf
	} else if !bytes.Equal(leaf.Raw, cert.Certificate[0]) {
		return nil, errors.New("certs: Leaf does not match Certificate[0]")
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("certs: private key of type %T is not a crypto.Signer", cert.PrivateKey)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("certs: private key does not match the leaf's public key")
	}

	sum := sha256.Sum256(cert.Certificate[0])
	e := &entry{
		id:        hex.EncodeToString(sum[:]),
		cert:      &cert, // our own copy
		names:     leafNames(leaf),
		notBefore: leaf.NotBefore,
		notAfter:  leaf.NotAfter,
	}
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		e.keyType, e.rank = "ECDSA", 0
	case ed25519.PublicKey:
		e.keyType, e.rank = "Ed25519", 1
	case *rsa.PublicKey:
		e.keyType, e.rank = "RSA", 2
	default:
		e.keyType, e.rank = "unknown", 3
	}
	return e, nil
}

// leafNames returns the normalised, de-duplicated names to index a leaf
// under: its DNS SANs, or its CN when it has none. Names that cannot be
// matched (empty, or a wildcard with nothing after "*.") are skipped.
func leafNames(leaf *x509.Certificate) []string {
	src := leaf.DNSNames
	if len(src) == 0 && leaf.Subject.CommonName != "" {
		src = []string{leaf.Subject.CommonName}
	}
	names := make([]string, 0, len(src))
	for _, n := range src {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n == "" || n == "*." || n == "*" || slices.Contains(names, n) {
			continue
		}
		names = append(names, n)
	}
	return names
}
