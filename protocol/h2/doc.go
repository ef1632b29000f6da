// Package h2 is HTTP/2 (RFC 9113) for sluice: a frame codec, HPACK glue
// (RFC 7541, through golang.org/x/net/http2/hpack), the stateless message
// checks of RFC 9113 §8, and [ServerConn], the server connection state
// machine built on them (see LIFECYCLE.md).
// Section numbers in comments ("§6.5") refer to RFC 9113 unless another
// document is named.
//
// Like the rest of sluice it is written for an event loop on raw
// non-blocking sockets: nothing blocks, nothing is copied, and the hot
// paths (parsing a frame, reading its fields, writing a frame into a
// buffer with room) do not allocate.
//
// # Reading frames
//
// A connection reads into a buffer and hands everything it has to
// [Parser.Next], which returns the first complete frame (§4.1) as a
// [Frame]: its header and a Payload that is a view into the buffer. With
// only part of a frame Next returns n == 0 and nil, and the connection
// reads more; nothing is kept between calls. Next checks all that a frame
// can be checked for alone (§4.2 sizes, the stream identifiers of §6,
// padding, fixed lengths, SETTINGS values, zero WINDOW_UPDATE increments,
// self-dependencies) and returns [ConnectionError] or [StreamError] values
// as §5.4 classifies them; [Classify] tells which. Typed accessors
// ([Frame.Data], [Frame.Headers], [Frame.Settings], [Frame.WindowUpdate],
// ...) return the fields of each type, again as views.
//
// # Writing frames
//
// [AppendData], [AppendHeaders], [AppendContinuation], [AppendSettings]
// (and the allocation-free [AppendSettingsHeader] + [AppendSetting]),
// [AppendPing], [AppendGoAway], [AppendRSTStream], [AppendWindowUpdate],
// [AppendPriority], [AppendPushPromise] and [AppendFrameHeader] append one
// frame to a byte slice, like append.
//
// # Field blocks
//
// [Decoder] decodes a complete field block (§4.3) into a caller-provided
// []HeaderField, enforcing SETTINGS_MAX_HEADER_LIST_SIZE (§6.5.2) without
// losing HPACK synchronisation; [Encoder] appends an encoded block to a
// byte slice. [ValidateRequest], [ValidateResponse] and [ValidateTrailers]
// apply §8.2 and §8.3: lowercase names, no connection-specific fields,
// pseudo-header rules, the required request pseudo-headers, and field
// value characters. A failure is a malformed message (§8.1.1), a stream
// error of type PROTOCOL_ERROR.
//
// # Server connections
//
// [ServerConn] is the server side of a connection, without I/O: the
// caller feeds it the octets it reads ([ServerConn.Feed]), gets request
// heads, bodies and resets through a [Handler], answers with
// [ServerConn.WriteHeaders] and [ServerConn.WriteData], and writes
// [ServerConn.Output] to the socket. It keeps the stream states of §5.1,
// both directions of flow control (§5.2, §6.9; request windows reopen
// only when the handler calls [ServerConn.Consumed], responses are
// bounded by the client's windows and [ServerConfig].MaxOutput), SETTINGS
// synchronisation, graceful shutdown ([ServerConn.Shutdown]), timers
// ([ServerConn.Deadline], [ServerConn.Timeout]) and the flood defences of
// §10.5 (rapid reset, MadeYouReset, CONTINUATION, PING, SETTINGS, empty
// DATA, WINDOW_UPDATE, unread control frames), counted in [ConnStats].
//
// # Client connections
//
// [ClientConn] is the client side, for a proxy that speaks HTTP/2 to its
// backends (h2c with prior knowledge, gRPC): [ClientConn.OpenStream]
// sends a request head on the next stream (when [ClientConn.CanOpen]
// allows it: the server's MAX_CONCURRENT_STREAMS, GOAWAY), and
// [ClientConn.WriteData] and [ClientConn.WriteTrailers] its body; the
// response comes through a [ClientHandler]. Streams a server GOAWAY left
// unprocessed are reset with REFUSED_STREAM, so the caller may retry them
// elsewhere. The flood defences are the server's, against a misbehaving
// backend, counted in [ClientStats].
package h2
