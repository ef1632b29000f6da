// Package clienthello reads the TLS ClientHello at the start of a
// connection without terminating TLS: the server name (SNI, RFC 6066 §3),
// the ALPN protocols (RFC 7301), the supported versions (RFC 8446
// §4.2.1) and whether the hello carries an encrypted inner hello (ECH).
// Section numbers in this package's comments refer to the RFC named with
// them.
//
// A layer-4 router that passes TLS through to its backends must choose
// the backend before it has a byte to send to one: it peeks the first
// bytes the client sends, parses the ClientHello, picks a backend by name,
// then writes the exact bytes it peeked to the backend and relays the rest
// both ways. The TLS session stays end to end between client and backend.
//
// # Parsing
//
// The package does no I/O and keeps no state, for an event loop on raw
// non-blocking sockets. A session appends what each read returns to its
// buffer and calls [Parse] on everything it has so far. The answer is one
// of:
//
//   - a [Hello]: its Len is the number of bytes the records carrying the
//     ClientHello took; buf[:Len] and whatever follows are forwarded to
//     the backend unchanged;
//   - [ErrIncomplete]: buf is a valid prefix, read more;
//   - [ErrNotTLS]: buf cannot start a TLS handshake record, decided on
//     its first two bytes (an HTTP request fails on its first);
//   - [ErrMalformed]: TLS framing, but not a valid ClientHello, wrapped
//     with the reason;
//   - [ErrTooLarge]: the ClientHello declares more than [MaxHelloSize]
//     bytes (decided from its 4-byte header) or is spread over more than
//     [MaxHelloRecords] records.
//
// A ClientHello may be fragmented across several handshake records (RFC
// 8446 §5.1); Parse reassembles it. It never reads past the record that
// ends the ClientHello, and a definite answer never changes when bytes
// are appended, so a hello followed by other bytes in the same read is
// handled exactly like one that arrived alone. Every length is checked
// against its container before it is used.
//
// LIFECYCLE.md, next to this file, describes how a session drives this
// package: states, transitions and invariants.
//
// # Trust
//
// Nothing in a ClientHello is authenticated: the client chooses the name
// it sends, and the backend's certificate is what proves the server's
// identity to the client. A router may use ServerName to choose among
// backends it is willing to reach, never to grant access. With ECH the
// visible name is a public name; see [Hello].ECH.
package clienthello
