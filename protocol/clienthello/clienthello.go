package clienthello

import (
	"errors"
	"fmt"
)

// Record and handshake layer constants.
const (
	recordHeaderLen    = 5 // RFC 8446 §5.1: ContentType, legacy_record_version, uint16 length
	handshakeHeaderLen = 4 // RFC 8446 §4: HandshakeType, uint24 length

	// maxFragment: RFC 8446 §5.1 and RFC 5246 §6.2.1, "The length MUST
	// NOT exceed 2^14 bytes" for a plaintext record.
	maxFragment = 1 << 14

	contentHandshake = 22 // RFC 8446 §5.1, ContentType handshake
	typeClientHello  = 1  // RFC 8446 §4, HandshakeType client_hello

	// minHelloBody is the smallest ClientHello body RFC 5246 §7.4.1.2
	// allows: client_version (2), random (32), an empty session_id (1),
	// one cipher suite (2+2) and one compression method (1+1). A shorter
	// declared length is rejected as soon as it is read.
	minHelloBody = 2 + 32 + 1 + 2 + 2 + 1 + 1
)

// MaxHelloSize bounds the ClientHello handshake message, its 4-byte
// header included. A larger declared length is ErrTooLarge, decided as
// soon as the 4-byte header is in, before the body is buffered. Real
// hellos are far smaller: under 2 KB with a post-quantum key share
// (X25519MLKEM768), a few hundred bytes without.
const MaxHelloSize = 16 << 10

// MaxHelloRecords bounds the number of records that may carry the
// ClientHello: a hello not whole after that many is ErrTooLarge, decided
// when the last of them is in.
//
// RFC 8446 §5.1 sets no limit, but Parse keeps no state and walks every
// record header on each call. Fed one byte per read, a MaxHelloSize
// hello in one-byte records would cost a session about 3 s of CPU; with
// this bound the worst case is a few tens of milliseconds, the order of
// the read system calls the client forces anyway. Clients send one
// record; tools that fragment the hello to get past middleboxes send a
// few to a few hundred. With both bounds a session buffers at most
// MaxHelloSize + 5 × MaxHelloRecords bytes (21 KiB) before Parse decides.
const MaxHelloRecords = 1024

// Errors. ErrIncomplete and ErrNotTLS are returned bare, so testing for
// them with == or errors.Is costs nothing on the hot path; ErrMalformed
// and ErrTooLarge are wrapped with the reason (test them with errors.Is).
var (
	// ErrIncomplete: b is a valid prefix of a stream starting with a
	// ClientHello; call Parse again when more bytes have arrived.
	ErrIncomplete = errors.New("clienthello: incomplete ClientHello")

	// ErrNotTLS: b cannot start a TLS handshake record: its first byte is
	// not 22 (handshake), or its second is not 3 (major version of
	// legacy_record_version, RFC 8446 §5.1). Decided on the first two
	// bytes. An HTTP request, an SSL 2.0 hello, or a TLS record of another
	// type (an alert, say) all end here.
	ErrNotTLS = errors.New("clienthello: not a TLS handshake")

	// ErrMalformed: b starts like TLS but is not a valid ClientHello: a
	// bad record, a handshake message other than client_hello, a length
	// that overflows its container, a duplicate extension, an implausible
	// server name... The wrapped text says what.
	ErrMalformed = errors.New("clienthello: malformed ClientHello")

	// ErrTooLarge: the ClientHello declares more than MaxHelloSize bytes,
	// or is not whole after MaxHelloRecords records.
	ErrTooLarge = errors.New("clienthello: ClientHello too large")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Parse looks for a ClientHello at the start of b, the first bytes a
// client sent on a connection. It returns the Hello, whose Len says how
// many bytes of b the records carrying it took, or one of ErrIncomplete,
// ErrNotTLS, or an error wrapping ErrMalformed or ErrTooLarge.
//
// Parse keeps no state: call it again on the whole, longer, b when more
// bytes have arrived. Its answer is a function of the prefix it needed:
// once it is not ErrIncomplete, appending bytes to b does not change it.
// It never reads b[Len:].
//
// A hello in a single record (what clients send) costs an allocation per
// returned string or slice and nothing else; one fragmented across
// records costs one more, the size of the message, for reassembly.
// ErrIncomplete and ErrNotTLS allocate nothing.
func Parse(b []byte) (Hello, error) {
	n, msgLen, records, err := frame(b)
	if err != nil {
		return Hello{}, err
	}
	var msg []byte
	if records == 1 {
		msg = b[recordHeaderLen:n]
	} else {
		msg = reassemble(b[:n], msgLen)
	}
	h, err := parseBody(msg[handshakeHeaderLen:])
	if err != nil {
		return Hello{}, err
	}
	h.Len = n
	return h, nil
}

// frame walks the records at the start of b until they hold one whole
// handshake message. It returns the bytes those records take (n), the
// message's length with its header (msgLen) and how many records carry it.
// Every check is made as soon as the bytes it needs are in, in stream
// order, so the first failing check is the same for every longer b.
func frame(b []byte) (n, msgLen, records int, err error) {
	var hdr [handshakeHeaderLen]byte
	got := 0 // message bytes in the complete records before off
	off := 0
	for {
		rest := b[off:]
		if len(rest) == 0 {
			return 0, 0, 0, ErrIncomplete
		}
		// RFC 8446 §5.1: a ClientHello travels in handshake records, and
		// until it is complete nothing else may be sent (§5.1 forbids
		// interleaving other record types within a fragmented handshake
		// message).
		if rest[0] != contentHandshake {
			if off == 0 {
				return 0, 0, 0, ErrNotTLS
			}
			return 0, 0, 0, malformed("record of content type %d inside the ClientHello", rest[0])
		}
		if len(rest) < 2 {
			return 0, 0, 0, ErrIncomplete
		}
		// legacy_record_version is "MUST be ignored for all purposes"
		// (RFC 8446 §5.1) but every TLS and SSL 3.0 version is 3.x.
		if rest[1] != 3 {
			if off == 0 {
				return 0, 0, 0, ErrNotTLS
			}
			return 0, 0, 0, malformed("record version %d.x inside the ClientHello", rest[1])
		}
		if len(rest) < recordHeaderLen {
			return 0, 0, 0, ErrIncomplete
		}
		fragLen := int(rest[3])<<8 | int(rest[4])
		// RFC 8446 §5.1 and RFC 5246 §6.2.1: "Implementations MUST NOT
		// send zero-length fragments of Handshake ... types", and a
		// plaintext record is at most 2^14 bytes (record_overflow).
		if fragLen == 0 {
			return 0, 0, 0, malformed("empty handshake record")
		}
		if fragLen > maxFragment {
			return 0, 0, 0, malformed("record of %d bytes, limit %d", fragLen, maxFragment)
		}
		frag := rest[recordHeaderLen:]
		if len(frag) > fragLen {
			frag = frag[:fragLen]
		}

		// The handshake header may itself be split across records.
		for i := got; i < handshakeHeaderLen && i-got < len(frag); i++ {
			hdr[i] = frag[i-got]
			switch i {
			case 0:
				if hdr[0] != typeClientHello {
					return 0, 0, 0, malformed("handshake message of type %d, want client_hello", hdr[0])
				}
			case handshakeHeaderLen - 1:
				msgLen = handshakeHeaderLen + (int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3]))
				if msgLen > MaxHelloSize {
					return 0, 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, msgLen, MaxHelloSize)
				}
				if msgLen < handshakeHeaderLen+minHelloBody {
					return 0, 0, 0, malformed("ClientHello of %d bytes", msgLen)
				}
			}
		}
		// RFC 8446 §5.1: messages that can precede a key change, the
		// ClientHello among them, "MUST ... align with a record
		// boundary"; and in the first flight nothing may follow it in
		// its record. So the hello's last record ends with it.
		if msgLen > 0 && got+fragLen > msgLen {
			return 0, 0, 0, malformed("record runs %d bytes past the ClientHello", got+fragLen-msgLen)
		}
		if len(frag) < fragLen {
			return 0, 0, 0, ErrIncomplete
		}
		got += fragLen
		off += recordHeaderLen + fragLen
		records++
		if got == msgLen {
			return off, msgLen, records, nil
		}
		if records == MaxHelloRecords {
			return 0, 0, 0, fmt.Errorf("%w: not whole after %d records", ErrTooLarge, records)
		}
	}
}

// reassemble concatenates the fragments of the records in b, which frame
// has checked: whole handshake records holding exactly msgLen bytes.
func reassemble(b []byte, msgLen int) []byte {
	msg := make([]byte, 0, msgLen)
	for len(b) > 0 {
		n := recordHeaderLen + (int(b[3])<<8 | int(b[4]))
		msg = append(msg, b[recordHeaderLen:n]...)
		b = b[n:]
	}
	return msg
}
