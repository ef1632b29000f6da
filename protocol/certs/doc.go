// Package certs is the certificate store of a TLS-terminating proxy: a
// set of certificate chains with their private keys, indexed by the DNS
// names they are valid for, consulted on every handshake through
// [Store.GetCertificate] (plug it into [tls.Config.GetCertificate]).
//
// # Concurrency
//
// The store is read on every handshake, from many goroutines at once,
// and changed at run time by commands. Reads are lock-free: the index is
// an immutable snapshot behind an [sync/atomic.Pointer]. Every change
// ([Store.Add], [Store.Remove], [Store.Replace], [Store.SetDefault])
// copies the parts of the snapshot it touches, builds a new snapshot and
// publishes it with one atomic store; changes are serialised by a mutex.
// A handshake that loaded the old snapshot finishes with it, so a change
// never disturbs a handshake in flight nor an established connection:
// [Store.Replace] affects only handshakes that start after it returns.
//
// The *[tls.Certificate] values handed out are shared by all the
// handshakes that select them and must be treated as read-only, as
// crypto/tls does.
//
// # Indexing
//
// A certificate is indexed under every DNS name in its leaf's subject
// alternative names; the subject common name is used only when the leaf
// has no DNS SANs at all. Names are stored lower-cased without a
// trailing dot. A name of the form "*.example.com" is a wildcard: it
// matches exactly one extra label ("a.example.com", not
// "a.b.example.com" nor "example.com"). IP address SANs are ignored:
// SNI never carries an address (RFC 6066), so a client connecting by
// address gets the default certificate. A certificate without any DNS
// name can still be added, and is then reachable only as the default.
//
// Each certificate is identified by the lower-case hex SHA-256 of its
// leaf's DER encoding; that ID names it for [Store.Remove],
// [Store.Replace] and [Store.SetDefault]. Adding a certificate whose ID
// is already present fails with [ErrExists].
//
// # Selection
//
// [Store.GetCertificate] picks a certificate as follows.
//
//  1. The name is the ClientHello's server_name, lower-cased (ASCII),
//     with one trailing dot removed.
//  2. An empty name (no SNI) selects the default certificate.
//  3. Otherwise the certificates indexed under exactly that name are the
//     candidates; if there are none, those indexed under the wildcard
//     obtained by replacing the first label by "*" are; if there are none
//     either, the default certificate is used.
//  4. With several candidates for the name, they are ordered by: valid
//     now first (NotBefore <= now <= NotAfter, now taken from
//     [Store.Now], [time.Now] if nil), then key type (ECDSA, then
//     Ed25519, then RSA, then anything else), then latest NotAfter first,
//     then earliest added. The first candidate in that order that the
//     client can use, according to [tls.ClientHelloInfo.SupportsCertificate]
//     (signature schemes, curves, cipher suites, versions), is chosen.
//     The name itself was already matched by the index, so the hostname
//     part of that check is skipped (this keeps certificates named only
//     by their common name, which crypto/x509 no longer matches, on an
//     equal footing). If the client can use none of them, the first
//     valid candidate is chosen anyway (the first candidate if none is
//     valid), and the handshake reports the failure.
//  5. A single candidate is returned as is, without any check.
//  6. With no certificate at all in the store, GetCertificate returns
//     [ErrNoCertificate] and the handshake fails.
//
// Consequently a valid certificate always wins over an expired or
// not-yet-valid one that the client can use equally, even one that
// expires later, and among equally suitable certificates the one
// expiring last wins: a renewed certificate can be added next to the
// old one and takes over at once, and the old one can be removed later.
//
// # Default certificate
//
// The default certificate answers handshakes without SNI and with a
// name that no certificate covers. It is the one named by
// [Store.SetDefault]; if none was named (or the named one was removed),
// it is the earliest added certificate still in the store. Replacing a
// certificate with [Store.Replace] keeps its role: the replacement is
// the explicit default if the old one was, and takes the old one's place
// in the order of addition otherwise.
//
// # Allocation
//
// A lookup allocates nothing when the name is ASCII and at most 253
// bytes: the name is lower-cased into a stack buffer and the maps are
// indexed with m[string(b)], which the compiler does without a copy.
// Longer or non-ASCII names (never valid host names) are lower-cased
// with [strings.ToLower]. Choosing among several candidates calls
// [tls.ClientHelloInfo.SupportsCertificate], whose cost is the standard
// library's.
package certs
