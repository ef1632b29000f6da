package proxyproto

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
)

// 2.1 Human-readable header format (Version 1):
//
//	"PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
//	"PROXY" SP "UNKNOWN" [ anything but CR and LF ] CRLF
const (
	v1Prefix  = "PROXY "
	v1TCP4    = "TCP4"
	v1TCP6    = "TCP6"
	v1Unknown = "UNKNOWN"
)

// Longest textual addresses and ports accepted in a v1 field. An IPv6
// address may end in dotted IPv4 ("ffff:...:ffff:255.255.255.255", 45
// bytes); such a line still has to fit in MaxV1Len.
const (
	maxV1IPv4Len = len("255.255.255.255")
	maxV1IPv6Len = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
	maxV1PortLen = len("65535")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// parseV1 parses a v1 line at the start of b; b[0] is 'P'.
func parseV1(h *Header, b []byte) (int, error) {
	// "PROXY" then exactly one space. Compare what is there, so that
	// "GET" fails on its first byte and "PROX" waits.
	if n := min(len(b), len(v1Prefix)); string(b[:n]) != v1Prefix[:n] {
		return 0, ErrNotProxy
	}
	if len(b) < len(v1Prefix) {
		return 0, ErrIncomplete
	}

	// Look for the end of the line, but never past MaxV1Len: the CRLF
	// must be within the first 107 bytes. Stopping at the first CR or LF
	// also means the payload after the line is never looked at.
	body := b[len(v1Prefix):min(len(b), MaxV1Len)]
	eol := bytes.IndexAny(body, "\r\n")
	if eol < 0 {
		// Without a CR by byte 106 the CRLF cannot end by byte 107.
		if len(b) >= MaxV1Len-1 {
			return 0, fmt.Errorf("%w: v1: no CRLF in the first %d bytes", ErrTooLong, MaxV1Len)
		}
		if err := scanV1(h, body, false); err != nil {
			return 0, err
		}
		return 0, ErrIncomplete
	}
	cr := len(v1Prefix) + eol
	// 2.1: "The receiver must not tolerate a single CR or LF character
	// to end the line when a complete CRLF sequence is expected."
	if b[cr] == '\n' {
		return 0, invalidf("v1: line ends with LF without CR")
	}
	if cr+2 > MaxV1Len {
		return 0, fmt.Errorf("%w: v1: no CRLF in the first %d bytes", ErrTooLong, MaxV1Len)
	}
	// The line is complete once the LF is in; until then only an LF may
	// follow, so the line must already decode.
	if err := scanV1(h, body[:eol], true); err != nil {
		return 0, err
	}
	if cr+1 == len(b) {
		return 0, ErrIncomplete
	}
	if b[cr+1] != '\n' {
		return 0, invalidf("v1: CR not followed by LF")
	}
	return cr + 2, nil
}

// cutSpace splits b at its first space.
func cutSpace(b []byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// hasPrefixOf reports whether b is a prefix of s.
func hasPrefixOf(b []byte, s string) bool {
	return len(b) <= len(s) && string(b) == s[:len(b)]
}

// scanV1 checks the text after "PROXY " (and before CR if complete). For a
// complete line it decodes into h. For a partial one it checks that the
// bytes so far can still start a valid line, so garbage is rejected before
// the CRLF (2.1: "abort the connection as soon as possible"); the fields
// are only decoded once the CRLF is seen (2.1: "The receiver must wait for
// the CRLF sequence before starting to decode the addresses").
func scanV1(h *Header, body []byte, complete bool) error {
	proto, rest, more := cutSpace(body)
	if !more && !complete {
		if hasPrefixOf(proto, v1TCP4) || hasPrefixOf(proto, v1TCP6) || hasPrefixOf(proto, v1Unknown) {
			return nil
		}
		return invalidf("v1: unknown protocol %q", proto)
	}
	var t Transport
	switch string(proto) {
	case v1Unknown:
		// 2.1: "For UNKNOWN, the rest of the line before the CRLF may
		// be omitted by the sender, and the receiver must ignore
		// anything presented before the CRLF is found."
		h.Version, h.Command, h.Transport = V1, Local, Unspec
		return nil
	case v1TCP4:
		t = TCP4
	case v1TCP6:
		t = TCP6
	default:
		return invalidf("v1: unknown protocol %q", proto)
	}
	if !more {
		return invalidf("v1: %s without addresses", t)
	}

	// src SP dst SP sport SP dport, each separated by exactly one space.
	var (
		src, dst     netip.Addr
		sport, dport uint16
	)
	for i := 0; i < 4; i++ {
		field, next, more := cutSpace(rest)
		if !more && !complete {
			return checkV1Partial(t, i, field)
		}
		switch {
		case i == 3 && more:
			return invalidf("v1: data after the destination port")
		case i < 3 && !more:
			return invalidf("v1: %s line has %d fields, want 4", t, i+1)
		case len(field) == 0:
			return invalidf("v1: empty field (two spaces in a row?)")
		}
		var ok bool
		switch i {
		case 0, 1:
			var a netip.Addr
			if t == TCP4 {
				a, ok = parseV1IPv4(field, false)
			} else {
				a, ok = parseV1IPv6(field)
			}
			if !ok {
				// 2.1: "The advertised protocol family dictates what
				// format to use."
				return invalidf("v1: bad %s address %q", t, field)
			}
			if i == 0 {
				src = a
			} else {
				dst = a
			}
		case 2, 3:
			var p uint16
			if p, ok = parseV1Port(field, false); !ok {
				return invalidf("v1: bad port %q", field)
			}
			if i == 2 {
				sport = p
			} else {
				dport = p
			}
		}
		rest = next
	}
	if complete {
		h.Version, h.Command, h.Transport = V1, Proxy, t
		h.Source = netip.AddrPortFrom(src, sport)
		h.Destination = netip.AddrPortFrom(dst, dport)
	}
	return nil
}

// checkV1Partial checks the field being received, number i (0 source, 1
// destination, 2 and 3 ports), for characters and length only.
func checkV1Partial(t Transport, i int, f []byte) error {
	ok := true
	switch {
	case i >= 2:
		_, ok = parseV1Port(f, true)
	case t == TCP4:
		_, ok = parseV1IPv4(f, true)
	default:
		ok = len(f) <= maxV1IPv6Len
		for _, c := range f {
			if !isIPv6Char(c) {
				ok = false
				break
			}
		}
	}
	if !ok {
		return invalidf("v1: bad field %q", f)
	}
	return nil
}

// parseV1IPv4 parses 2.1's IPv4 form: "exactly 4 integers in the range
// [0..255] inclusive written in decimal representation separated by
// exactly one dot", and "Heading zeroes are not permitted". With partial,
// it only checks that b can still become such an address. Written by hand
// rather than with netip.ParseAddr so that a v1 TCP4 line parses without
// allocating.
func parseV1IPv4(b []byte, partial bool) (netip.Addr, bool) {
	var (
		out    [4]byte
		octet  int // index in out
		val    int
		digits int
	)
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return netip.Addr{}, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, false
			}
		case c == '.':
			if digits == 0 || octet == 3 {
				return netip.Addr{}, false
			}
			out[octet] = byte(val)
			octet, val, digits = octet+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if partial {
		return netip.Addr{}, true
	}
	if octet != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	out[3] = byte(val)
	return netip.AddrFrom4(out), true
}

func isIPv6Char(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.'
}

// parseV1IPv6 parses 2.1's IPv6 form: "series of sets of 4 hexadecimal
// digits (upper or lower case) delimited by colons", with at most one "::"
// standing for one or more zero groups, "The total number of decoded bits
// must exactly be 128". Groups may have 1 to 4 digits, and the last 32 bits
// may be written as dotted IPv4 (::ffff:192.0.2.1), the forms
// netip.Addr.String produces, so AppendV1 output always parses back. Zones
// ("%eth0") are rejected: the protocol cannot carry them; so is an IPv4
// literal, since the TCP6 family dictates the format. Written by hand, not
// with netip.ParseAddr, so that a v1 line parses without allocating (the
// results agree: see FuzzV1IPv6).
func parseV1IPv6(b []byte) (netip.Addr, bool) {
	var (
		ip       [16]byte
		i        int // bytes of ip filled
		ellipsis = -1
	)
	if len(b) > maxV1IPv6Len {
		return netip.Addr{}, false
	}
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, b = 0, b[2:]
	}
	for len(b) > 0 {
		if i == 16 {
			return netip.Addr{}, false // more than 128 bits
		}
		var group, digits int
		for digits < len(b) && digits <= 4 {
			v, ok := hexVal(b[digits])
			if !ok {
				break
			}
			group = group<<4 | v
			digits++
		}
		if digits < len(b) && b[digits] == '.' {
			// Dotted IPv4 tail: the last 32 bits, ending the address.
			if i > 12 {
				return netip.Addr{}, false
			}
			a4, ok := parseV1IPv4(b, false)
			if !ok {
				return netip.Addr{}, false
			}
			v4 := a4.As4()
			copy(ip[i:], v4[:])
			i, b = i+4, nil
			break
		}
		if digits == 0 || digits > 4 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(group>>8), byte(group)
		i, b = i+2, b[digits:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false // bad separator, or a trailing single colon
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false // a second "::"
			}
			ellipsis, b = i, b[1:]
		}
	}
	switch {
	case i < 16 && ellipsis < 0:
		return netip.Addr{}, false // too few bits
	case i == 16 && ellipsis >= 0:
		return netip.Addr{}, false // "::" must stand for at least one group
	case i < 16:
		// Move the groups after "::" to the end, zeros in between.
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	}
	return netip.AddrFrom16(ip), true
}

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// parseV1Port parses 2.1's port form: "a decimal integer in the range
// [0..65535] inclusive. Heading zeroes are not permitted". No sign, no
// spaces. With partial, it only checks that b can still become one.
func parseV1Port(b []byte, partial bool) (uint16, bool) {
	if len(b) == 0 {
		return 0, partial
	}
	if len(b) > maxV1PortLen || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 0xFFFF {
		return 0, false
	}
	return uint16(v), true
}

// AppendV1 appends h as a v1 line (2.1) to dst. A Proxy header with TCP4
// or TCP6 transport gives the full line; a Local header, or a Proxy one
// with Unspec transport, gives "PROXY UNKNOWN\r\n" (2.1 reserves UNKNOWN
// for connections whose endpoints cannot be expressed; note that it
// advises against sending it for health checks, which some receivers
// reject: prefer a full TCP line built from the check's own socket).
// Other transports (UDP, Unix) have no v1 form: AppendV1 returns an error
// wrapping ErrInvalid and dst unchanged, rather than silently degrading to
// UNKNOWN. It does not allocate if dst has room for MaxV1Len more bytes.
func (h *Header) AppendV1(dst []byte) ([]byte, error) {
	switch {
	case h.Command == Local, h.Command == Proxy && h.Transport == Unspec:
		return append(dst, "PROXY UNKNOWN\r\n"...), nil
	case h.Command != Proxy:
		return dst, invalidf("v1: unknown command %d", h.Command)
	}
	var name string
	src, dstAddr := h.Source.Addr(), h.Destination.Addr()
	switch h.Transport {
	case TCP4:
		name = v1TCP4
		if !src.Is4() || !dstAddr.Is4() {
			return dst, invalidf("v1: TCP4 needs IPv4 addresses, have %v and %v", src, dstAddr)
		}
	case TCP6:
		name = v1TCP6
		if !src.Is6() || !dstAddr.Is6() {
			return dst, invalidf("v1: TCP6 needs IPv6 addresses, have %v and %v", src, dstAddr)
		}
		if src.Zone() != "" || dstAddr.Zone() != "" {
			return dst, invalidf("v1: IPv6 zones cannot be sent")
		}
	default:
		return dst, invalidf("v1: transport %s has no v1 form", h.Transport)
	}
	dst = append(dst, v1Prefix...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = src.AppendTo(dst)
	dst = append(dst, ' ')
	dst = dstAddr.AppendTo(dst)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(h.Source.Port()), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(h.Destination.Port()), 10)
	return append(dst, '\r', '\n'), nil
}
