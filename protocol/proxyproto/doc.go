// Package proxyproto reads and writes the PROXY protocol header, versions 1
// (human-readable text) and 2 (binary, with TLVs), as specified by HAProxy
// in "The PROXY protocol, Versions 1 & 2"
// (https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt). Section
// numbers in this package's comments ("2.1", "2.2.3", ...) refer to that
// document.
//
// A proxy that terminates a client's TCP connection and opens another one
// to a backend hides the client's address from the backend. The PROXY
// protocol puts it back: the proxy writes one small header, before any
// client byte, naming the original source and destination.
//
// # Receiving
//
// The package is written for an event loop on raw non-blocking sockets:
// there is no reader and nothing blocks. A session appends what each read
// returns to its buffer and calls [Parse] (or [ParseInto], which reuses a
// [Header] and allocates nothing on the hot path) on everything it has so
// far. The answer is one of:
//
//   - a [Header] and the number n of bytes it used: b[:n] is the raw
//     header (to relay verbatim if needed), b[n:] is payload, untouched;
//   - [ErrIncomplete]: b is a valid prefix of a header, read more;
//   - [ErrNotProxy]: b cannot start a header at all (decided on the first
//     byte that differs from "PROXY " or the v2 signature);
//   - [ErrInvalid]: a header that breaks the specification, wrapped with
//     the reason;
//   - [ErrTooLong]: the header is larger than the configured limit.
//
// Parse never looks past the end of the header, so a header followed by
// payload in the same read is handled exactly like one that arrived alone.
// Invalid input is reported as early as the bytes allow, so that a peer
// sending garbage is dropped without waiting for a timeout (section 2.1:
// "abort the connection as soon as possible").
//
// # Sending
//
// [NewTCP] builds the header for a proxied TCP connection, and
// [Header.AppendV1] or [Header.AppendV2] encode it into a caller's buffer
// without allocating. A relaying proxy forwards the received b[:n]
// instead of re-encoding, so that TLVs it does not understand survive.
//
// LIFECYCLE.md, next to this file, describes how a session drives this
// package: states, transitions and invariants.
//
// # Security
//
// Section 5 of the specification: a receiver must only accept the header
// from trusted peers and must never guess whether one is present. This
// package parses; deciding whether a listener expects a header, and from
// whom, is the session's configuration.
package proxyproto
