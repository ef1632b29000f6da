package http1

// Error is a parse error. Code is the status a server answers a request
// that fails this way with; Reason says why, for logs.
//
// For a response (from a backend) every error means the same thing to the
// client: the proxy answers 502 (Bad Gateway) and closes the backend
// connection (RFC 9112 §5.2, RFC 9110 §15.6.3). [Error.Status] does that
// mapping.
//
// Errors are preallocated values: parsing never allocates, even to fail.
// Compare with errors.Is: a specific error (ErrDuplicateContentLength)
// matches itself and the class of its code (ErrBadRequest for 400,
// ErrURITooLong for 414, ErrHeadTooLarge for 431, ErrNotImplemented for
// 501, ErrVersionNotSupported for 505).
type Error struct {
	Code   int
	Reason string
	class  bool
}

func (e *Error) Error() string { return "http1: " + e.Reason }

// Is makes a class sentinel match every error with its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.class && t.Code == e.Code
}

// Status is the status to answer the client with when a message of kind k
// fails with e: e.Code for a request, 502 for a response.
func (e *Error) Status(k Kind) int {
	if k == Response {
		return 502
	}
	return e.Code
}

func class400(r string) *Error { return &Error{Code: 400, Reason: r} }

// Classes.
var (
	// ErrBadRequest (400): malformed message or ambiguous framing.
	ErrBadRequest = &Error{Code: 400, Reason: "bad request", class: true}
	// ErrURITooLong (414): the request line is longer than Limits.MaxLine
	// (RFC 9112 §3: a server MUST answer 414 to a request-target longer
	// than it wishes to parse).
	ErrURITooLong = &Error{Code: 414, Reason: "request line too long", class: true}
	// ErrHeadTooLarge (431): the head is longer than Limits.MaxHead, or
	// a limit on fields or trailers was passed (RFC 6585 §5).
	ErrHeadTooLarge = &Error{Code: 431, Reason: "header section too large", class: true}
	// ErrNotImplemented (501): a request uses a transfer coding this
	// package does not know (RFC 9112 §6.1).
	ErrNotImplemented = &Error{Code: 501, Reason: "transfer coding not implemented", class: true}
	// ErrVersionNotSupported (505): a well-formed HTTP-version whose
	// major version is not 1 (RFC 9110 §15.6.6).
	ErrVersionNotSupported = &Error{Code: 505, Reason: "HTTP version not supported", class: true}
)

// Specific errors. The code is in brackets.
var (
	// Start line (RFC 9112 §3, §4).
	ErrBadMethod          = class400("invalid method")                            // [400] not a token, or empty
	ErrBadTarget          = class400("invalid request-target")                    // [400] bytes, form, or method/form mismatch
	ErrBadVersion         = class400("invalid HTTP-version")                      // [400] not "HTTP/" DIGIT "." DIGIT
	ErrUnsupportedVersion = &Error{Code: 505, Reason: "unsupported HTTP version"} // [505]
	ErrBadStatus          = class400("invalid status line")                       // [400] status not 3 digits in 100..599, bad reason
	ErrTooManyEmptyLines  = class400("too many empty lines before request line")  // [400]
	ErrStatusLineTooLong  = &Error{Code: 431, Reason: "status line too long"}     // [431]
	// Line structure (RFC 9112 §2.2).
	ErrBareCR = class400("CR not followed by LF") // [400]
	ErrBareLF = class400("LF without CR")         // [400]
	// Fields (RFC 9112 §5, RFC 9110 §5).
	ErrObsFold           = class400("obsolete line folding or whitespace-led field line") // [400]
	ErrSpaceBeforeColon  = class400("whitespace between field name and colon")            // [400]
	ErrEmptyFieldName    = class400("empty field name")                                   // [400]
	ErrBadFieldName      = class400("invalid byte in field name")                         // [400]
	ErrBadFieldValue     = class400("invalid byte in field value")                        // [400]
	ErrTooManyFields     = &Error{Code: 431, Reason: "too many header fields"}            // [431]
	ErrMissingHost       = class400("HTTP/1.1 request without Host")                      // [400]
	ErrDuplicateHost     = class400("more than one Host field")                           // [400]
	ErrBadHost           = class400("invalid Host")                                       // [400]
	ErrBadContentLength  = class400("invalid Content-Length")                             // [400]
	ErrDuplicateLength   = class400("more than one Content-Length")                       // [400]
	ErrLengthAndEncoding = class400("both Content-Length and Transfer-Encoding")          // [400]
	ErrBadEncoding       = class400("invalid Transfer-Encoding")                          // [400]
	ErrDuplicateEncoding = class400("more than one Transfer-Encoding field")              // [400]
	ErrChunkedNotLast    = class400("Transfer-Encoding does not end in chunked")          // [400]
	ErrChunkedTwice      = class400("chunked applied more than once")                     // [400]
	ErrEncodingHTTP10    = class400("Transfer-Encoding in an HTTP/1.0 message")           // [400]
	ErrUnknownEncoding   = &Error{Code: 501, Reason: "unknown transfer coding"}           // [501]
	// Chunked body (RFC 9112 §7.1).
	ErrBadChunkSize      = class400("invalid chunk size")                         // [400]
	ErrChunkSizeOverflow = class400("chunk size too large")                       // [400]
	ErrBadChunkExt       = class400("invalid chunk extension")                    // [400]
	ErrChunkLineTooLong  = class400("chunk size line too long")                   // [400]
	ErrBadChunkData      = class400("chunk data not followed by CRLF")            // [400]
	ErrBadTrailer        = class400("invalid trailer field")                      // [400]
	ErrTrailersTooLarge  = &Error{Code: 431, Reason: "trailer section too large"} // [431]
	// Misuse.
	ErrBufferShrunk = &Error{Code: 500, Reason: "buffer shorter than on the previous call"}
	ErrBodyKind     = &Error{Code: 500, Reason: "Body used without a valid Init"}
	ErrInvalidEdit  = &Error{Code: 500, Reason: "edit would produce an invalid head"}
)
