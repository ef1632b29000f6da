// Package http1 parses and edits HTTP/1.1 messages for a reverse proxy,
// as specified by RFC 9112 (HTTP/1.1 message syntax) and RFC 9110 (HTTP
// semantics). Section numbers in comments ("RFC 9112 §6.3") refer to
// those documents.
//
// The package is written for an event loop on raw non-blocking sockets:
// there is no reader, nothing blocks, and nothing is copied or allocated
// on the hot path.
//
// # Heads
//
// A session reads from a socket into a buffer and calls [Parser.Parse]
// with everything it has for the current message; the parser resumes at
// the first byte it has not examined (its scan position), so a head that
// arrives in many pieces costs the same as one that arrives at once. The
// result is a [Head] whose elements are [Span] offsets relative to the
// first byte of the message, so the buffer may be moved between calls but
// must keep the head's bytes. Derived facts a proxy needs (body framing,
// Connection options, Upgrade, Expect: 100-continue, Host) are computed
// while parsing.
//
// # Bodies
//
// [Head.Body] applies the message body length rules (RFC 9112 §6.3), and
// [Body] finds where the body ends as its bytes stream through, without
// buffering them, so the proxy forwards the bytes it received unchanged:
// chunked framing, extensions and trailers included.
//
// # Editing
//
// [Editor] removes, replaces and adds fields (and may rewrite the
// request-target) and returns the result as a list of slices for writev:
// runs of untouched bytes are sub-slices of the original head.
//
// # Strictness
//
// A proxy that frames a message differently from the server behind it
// lets a client smuggle a request (RFC 9112 §11.2). This package accepts
// only what it can frame in exactly one way, and answers everything else
// with an [Error] whose Code is the status to send (for a response from a
// backend, 502 whatever the Code: see [Error.Status]):
//
//   - Every line ends in CRLF. A bare LF, which RFC 9112 §2.2 lets a
//     recipient accept, is rejected (400) in heads, chunk lines and
//     trailers; so is a bare CR anywhere.
//   - Up to MaxEmptyLines (4) empty lines before a request line are
//     skipped (RFC 9112 §2.2 says SHOULD ignore at least one); more is 400.
//     A response must start with its status line.
//   - Request line: a token method, exactly one SP between the parts, a
//     request-target of visible US-ASCII other than "#" (no fragment, no
//     CTL, no byte >= 0x80), whose form must fit the method (authority-form
//     with a port for CONNECT only, "*" for OPTIONS only; origin-form or
//     absolute-form otherwise, absolute-form without userinfo and, for
//     http(s), with a host). HTTP-version must be "HTTP/1.x": a higher
//     minor than 1 is handled as 1.1 (RFC 9110 §2.5; Minor is 1 and an
//     [Editor] forwards the head as HTTP/1.1), another well-formed major
//     version is 505, anything else 400. A request line longer than Limits.MaxLine is 414.
//   - Status line: "HTTP/1.x", SP, three digits in 100..599 (RFC 9110 §15),
//     then SP and an optional reason-phrase. The SP before an empty reason
//     may be missing ("HTTP/1.1 200" CRLF): servers send it, and it
//     cannot change framing.
//   - Fields: a token name directly followed by ":" (whitespace before the
//     colon is 400, RFC 9112 §5.1), a value of VCHAR, SP, HTAB and obs-text
//     (0x80-0xFF, allowed by RFC 9110 §5.5); NUL, other CTLs and DEL are
//     400. obs-fold (a line starting with SP or HTAB) is 400 (RFC 9112
//     §5.2), in requests and responses alike. Values are trimmed of OWS.
//   - Host: required in HTTP/1.1 requests, at most once, and a valid
//     uri-host [":" port] (RFC 9112 §3.2, RFC 9110 §7.2); else 400.
//   - Content-Length must be one field with a single decimal value at
//     most 2^62. A list of identical values ("5, 5"), which RFC 9110 §8.6
//     allows a recipient to accept, is rejected (400), as is a second
//     Content-Length field: forwarding either risks a server that reads it
//     differently.
//   - Transfer-Encoding must be one field (a second field line is 400: a
//     server reading only the first would see other codings), a list of
//     bare tokens (no parameters, no empty elements), with chunked at
//     most once. In a request, chunked must be last (RFC 9112 §6.3 point
//     4: 400) and every coding must be known (chunked, gzip, deflate,
//     compress, x-gzip, x-compress), else 501 (RFC 9112 §6.1). A response
//     whose codings do not end in chunked is read until close.
//   - Transfer-Encoding with Content-Length is 400 (RFC 9112 §6.3 point 3
//     says it "ought to be handled as an error"), and Transfer-Encoding in
//     an HTTP/1.0 message is 400 (RFC 9112 §6.1: the framing is faulty).
//   - Chunked bodies: chunk-size is 1*HEXDIG (no sign, "0x" or leading
//     whitespace) at most 2^62; extensions must follow the grammar
//     (token or quoted-string values) and a size line is at most
//     Limits.MaxChunkLine bytes; data must be followed by CRLF; trailer
//     fields are checked like head fields and bounded by
//     Limits.MaxTrailers bytes and Limits.MaxFields fields.
//   - Limits: the head is at most Limits.MaxHead bytes (431 as soon as
//     that many bytes were scanned without its end), at most
//     Limits.MaxFields fields (431 on the first byte of the next one).
//
// LIFECYCLE.md, next to this file, describes the states a message goes
// through and the invariants a session can rely on.
package http1
