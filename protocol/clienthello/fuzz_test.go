package clienthello

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks the properties a router relies on, whatever the bytes:
//   - Parse never panics; every error is one of the four classes, and
//     ErrIncomplete and ErrNotTLS are returned bare with a zero Hello;
//   - ErrNotTLS exactly when the first two bytes say so;
//   - Parse agrees with refFrame, a plain reading of the record layer:
//     a Hello only when the records hold a whole message, and then Len is
//     where they end; ErrIncomplete only while they do not;
//   - a definite answer (anything but ErrIncomplete) is the same, error
//     text included, for every longer input, and every prefix of the
//     input gets either ErrIncomplete or that same answer; for a Hello,
//     every strict prefix of b[:Len] is ErrIncomplete;
//   - a Hello's fields obey the documented limits (ServerName lowercase,
//     no trailing dot, a plausible DNS name; ALPN names not empty; ...);
//   - the message framed again in one record, or in 3-byte fragments
//     (larger if MaxHelloRecords requires), parses to the same Hello
//     (with its own Len).
//
// Seeds: the hand-built valid and malformed vectors, fragmented copies,
// and the files in testdata/fuzz/FuzzParse (crypto/tls captures, whole
// and fragmented, and garbage).
func FuzzParse(f *testing.F) {
	for _, c := range malformedCases() {
		f.Add(c.in)
	}
	for _, in := range [][]byte{
		hello(), hello(sniExt("example.com"), alpnExt("h2", "http/1.1"), versionsExt(0x0304, 0x0303)),
		hello(sniExt("Trailing.Dot."), ext{extEncryptedClientHello, []byte{0}}, ext{extPreSharedKey, nil}),
		fragment(handshake(1, helloBody([]ext{sniExt("frag.example"), alpnExt("h2")})), 1, 2, 1, 7),
		append(hello(sniExt("a.example")), record(20, []byte{1})...),
		[]byte("\x16\x03\x01\x00\x05\x01\x00\x00\x41"), []byte("GET / HTTP/1.1\r\n"),
	} {
		f.Add(in)
	}
	f.Fuzz(checkParse)
}

func checkParse(t *testing.T, b []byte) {
	h, err := Parse(b)
	if err != nil {
		if !reflect.DeepEqual(h, Hello{}) {
			t.Fatalf("Hello %+v with error %v", h, err)
		}
		switch {
		case err == ErrIncomplete, err == ErrNotTLS:
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge):
		default:
			t.Fatalf("unclassified error %v", err)
		}
	}

	notTLS := len(b) >= 1 && b[0] != contentHandshake || len(b) >= 2 && b[1] != 3
	if (err == ErrNotTLS) != notTLS {
		t.Fatalf("%q: error %v, first bytes say not TLS: %v", b[:min(len(b), 2)], err, notTLS)
	}

	msg, end, state := refFrame(b)
	switch {
	case err == nil && (state != refComplete || end != h.Len):
		t.Fatalf("Hello with Len %d; reference framing: state %d, end %d", h.Len, state, end)
	case err == ErrIncomplete && state != refIncomplete:
		t.Fatalf("ErrIncomplete; reference framing: state %d, end %d", state, end)
	}

	checkStable(t, b, h, err)
	if err != nil {
		return
	}
	checkFields(t, h)

	// Framed again, the message parses the same.
	small := max(3, (len(msg)+MaxHelloRecords-1)/MaxHelloRecords)
	for _, fb := range [][]byte{fragment(msg, len(msg)), fragment(msg, small)} {
		h2, err := Parse(fb)
		want := h
		want.Len = len(fb)
		if err != nil || !reflect.DeepEqual(h2, want) {
			t.Fatalf("re-framed in %d bytes: %+v, %v; want %+v", len(fb), h2, err, want)
		}
	}
}

// checkStable checks that the answer for b, if definite, holds for longer
// inputs, and that prefixes of b get ErrIncomplete or the same answer.
func checkStable(t *testing.T, b []byte, h Hello, err error) {
	same := func(h2 Hello, err2 error) bool {
		if err == nil || err2 == nil {
			return err == nil && err2 == nil && reflect.DeepEqual(h, h2)
		}
		return err.Error() == err2.Error()
	}
	if err != ErrIncomplete {
		for _, suffix := range [][]byte{{0}, {contentHandshake}, b} {
			longer := append(bytes.Clone(b), suffix...)
			if h2, err2 := Parse(longer); !same(h2, err2) {
				t.Fatalf("%d more bytes change the answer: %+v, %v; was %+v, %v", len(suffix), h2, err2, h, err)
			}
		}
	}
	// All prefixes of short inputs; a sample of long ones, with the
	// bytes around Len.
	step := max(1, len(b)/64)
	for i := 0; i < len(b); i++ {
		if i%step != 0 && (err != nil || i < h.Len-2 || i > h.Len) {
			continue
		}
		h2, err2 := Parse(b[:i])
		switch {
		case err == nil && i < h.Len && err2 != ErrIncomplete:
			t.Fatalf("prefix of %d bytes of a %d-byte hello: %v", i, h.Len, err2)
		case err2 != ErrIncomplete && !same(h2, err2):
			t.Fatalf("prefix of %d bytes: %+v, %v; whole: %+v, %v", i, h2, err2, h, err)
		}
	}
}

func checkFields(t *testing.T, h Hello) {
	if h.Len < recordHeaderLen+handshakeHeaderLen+minHelloBody {
		t.Fatalf("Len %d", h.Len)
	}
	if h.Version>>8 != 3 {
		t.Fatalf("Version 0x%04x", h.Version)
	}
	if n := h.ServerName; n != "" {
		if len(n) > maxHostName || n[len(n)-1] == '.' || n[0] == '.' || bytes.Contains([]byte(n), []byte("..")) {
			t.Fatalf("ServerName %q", n)
		}
		for _, c := range []byte(n) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				t.Fatalf("ServerName %q", n)
			}
		}
	}
	if h.ALPN != nil && len(h.ALPN) == 0 {
		t.Fatalf("empty non-nil ALPN")
	}
	for _, p := range h.ALPN {
		if len(p) == 0 || len(p) > 255 {
			t.Fatalf("ALPN name of %d bytes", len(p))
		}
	}
	if h.SupportedVersions != nil && (len(h.SupportedVersions) == 0 || len(h.SupportedVersions) > 127) {
		t.Fatalf("%d supported versions", len(h.SupportedVersions))
	}
}

type refState int

const (
	refIncomplete refState = iota
	refComplete
	refBroken
)

// refFrame reads the record layer plainly (RFC 8446 §5.1, §4): it gathers
// the fragments of the handshake records at the start of b, each of 1 to
// 2^14 bytes and version 3.x, until they hold a handshake header and the
// length it declares. It does not look at the message's type or size
// limit; it reports refBroken for framing that can never complete (a
// record of another type or a bad length, or fragments that overrun the
// message), refComplete with the message and the bytes its records take.
func refFrame(b []byte) (msg []byte, end int, state refState) {
	off := 0
	for {
		if len(msg) >= 4 {
			need := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			switch {
			case len(msg) == need:
				return msg, off, refComplete
			case len(msg) > need:
				return nil, 0, refBroken
			}
		}
		h := b[off:]
		if len(h) >= 1 && h[0] != 22 || len(h) >= 2 && h[1] != 3 {
			return nil, 0, refBroken
		}
		if len(h) < 5 {
			return nil, 0, refIncomplete
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > 1<<14 {
			return nil, 0, refBroken
		}
		if len(h) < 5+n {
			return nil, 0, refIncomplete
		}
		msg = append(msg, h[5:5+n]...)
		off += 5 + n
	}
}

func TestRefFrame(t *testing.T) {
	msg := handshake(1, helloBody(nil))
	for _, c := range []struct {
		in    []byte
		end   int
		state refState
	}{
		{nil, 0, refIncomplete},
		{record(22, msg), len(msg) + 5, refComplete},
		{fragment(msg, 1), len(msg) * 6, refComplete},
		{fragment(msg, 1)[:20], 0, refIncomplete},
		{record(22, append(bytes.Clone(msg), 0)), 0, refBroken},
		{record(21, msg), 0, refBroken},
	} {
		got, end, state := refFrame(c.in)
		if state != c.state || end != c.end || state == refComplete && !bytes.Equal(got, msg) {
			t.Errorf("refFrame(%d bytes) = %d, %d; want %d, %d", len(c.in), end, state, c.end, c.state)
		}
	}
}
