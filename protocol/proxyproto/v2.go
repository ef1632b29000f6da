package proxyproto

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// v2Signature opens every v2 header (2.2). Its NUL at the 5th byte and
// its CRLFs make it fail fast in HTTP, TLS, SMTP and others (section 6).
var v2Signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// castagnoli is the CRC32c table of 2.2.3 (RFC 4960, Appendix B). This
// exact table value makes hash/crc32 use the CPU's CRC32 instructions when
// it has them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeroCRC [4]byte

// parseV2 parses a v2 header at the start of b; b[0] is CR. Every field is
// checked as soon as its byte is in, so a bad version, command or family,
// or an oversized length, fails before the rest is buffered.
func parseV2(h *Header, b []byte, maxLen int) (int, error) {
	if n := min(len(b), len(v2Signature)); string(b[:n]) != string(v2Signature[:n]) {
		return 0, ErrNotProxy
	}
	if len(b) <= 12 {
		return 0, ErrIncomplete
	}

	// 13th byte: version (high nibble) and command (low nibble).
	// 2.2: the version "must always be sent as \x2 and the receiver must
	// only accept this value"; for the command, "Receivers must drop
	// connections presenting unexpected values here".
	if v := b[12] >> 4; v != 2 {
		return 0, invalidf("v2: version %d, want 2", v)
	}
	cmd := Command(b[12] & 0x0F)
	if cmd != Local && cmd != Proxy {
		return 0, invalidf("v2: unknown command 0x%x", uint8(cmd))
	}
	if len(b) == 13 {
		return 0, ErrIncomplete
	}

	// 14th byte: address family and transport protocol. 2.2: other
	// values "must be rejected as invalid by receivers". Checked for
	// LOCAL too: the family is then ignored, but an unassigned value is
	// still a broken header.
	fam := Transport(b[13])
	addrLen := fam.addrLen()
	if addrLen < 0 {
		return 0, invalidf("v2: unknown family/protocol byte 0x%02x", b[13])
	}
	if len(b) < V2HeaderLen {
		return 0, ErrIncomplete
	}

	// 15th and 16th bytes: length of what follows, big-endian. 2.2:
	// "the length of the protocol header in bytes is always exactly 16 +
	// this value".
	length := int(binary.BigEndian.Uint16(b[14:16]))
	total := V2HeaderLen + length
	if total > maxLen {
		return 0, fmt.Errorf("%w: v2: header of %d bytes, limit %d", ErrTooLong, total, maxLen)
	}
	// The address block must be complete (2.2: "Address length is 2*4 +
	// 2*2 = 12 bytes", ...). For LOCAL the addresses are ignored and may
	// be absent (length 0, what 2.2 tells senders to do); a block that is
	// present but shorter than its family's is still rejected.
	if length < addrLen && (cmd == Proxy || length != 0) {
		return 0, invalidf("v2: %s needs %d address bytes, length is %d", fam, addrLen, length)
	}
	if len(b) < total {
		return 0, ErrIncomplete
	}
	hdr := b[:total:total]

	h.Version, h.Command = V2, cmd
	off := V2HeaderLen
	if length >= addrLen {
		off += addrLen
	}
	if cmd == Proxy {
		// 2.2: "Starting from the 17th byte, addresses are presented in
		// network byte order": source address, destination address,
		// source port, destination port.
		h.Transport = fam
		a := hdr[V2HeaderLen:]
		switch fam {
		case TCP4, UDP4:
			h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
			h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
		case TCP6, UDP6:
			h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])), binary.BigEndian.Uint16(a[32:34]))
			h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])), binary.BigEndian.Uint16(a[34:36]))
		case UnixStream, UnixDgram:
			h.SourceUnix = a[0:UnixAddrLen:UnixAddrLen]
			h.DestinationUnix = a[UnixAddrLen : 2*UnixAddrLen : 2*UnixAddrLen]
		}
	}
	// 2.2: LOCAL: "discard the protocol block including the family
	// which is ignored". Transport stays Unspec, addresses invalid.

	if err := parseTLVs(h, hdr, off); err != nil {
		return 0, err
	}
	return total, nil
}

// parseTLVs reads the TLVs that fill hdr[off:] (2.2: type, 16-bit
// big-endian length, value) into h.TLVs, and verifies a CRC32C TLV if
// there is one. The TLVs must exactly fill the rest of the header: a
// truncated vector means a broken sender or a forged length.
func parseTLVs(h *Header, hdr []byte, off int) error {
	crcAt := -1
	for off < len(hdr) {
		if len(hdr)-off < 3 {
			return invalidf("v2: truncated TLV: %d bytes left at offset %d", len(hdr)-off, off)
		}
		typ := hdr[off]
		n := int(binary.BigEndian.Uint16(hdr[off+1 : off+3]))
		start := off + 3
		if n > len(hdr)-start {
			return invalidf("v2: TLV 0x%02x of %d bytes overruns the header by %d", typ, n, n-(len(hdr)-start))
		}
		t := TLV{Type: typ, Value: hdr[start : start+n : start+n]}
		if err := checkTLV(t); err != nil {
			return err
		}
		if typ == PP2_TYPE_CRC32C {
			if crcAt >= 0 {
				return invalidf("v2: more than one CRC32C TLV")
			}
			crcAt = start
		}
		h.TLVs = append(h.TLVs, t)
		off = start + n
	}
	if crcAt >= 0 {
		// 2.2.3: replace the checksum field with zeros, compute the
		// CRC32c of the whole header, compare. Done in three pieces so
		// the caller's buffer is never written to.
		c := crc32.Update(0, castagnoli, hdr[:crcAt])
		c = crc32.Update(c, castagnoli, zeroCRC[:])
		c = crc32.Update(c, castagnoli, hdr[crcAt+4:])
		if want := binary.BigEndian.Uint32(hdr[crcAt:]); c != want {
			return invalidf("v2: CRC32C mismatch: header says %08x, computed %08x", want, c)
		}
	}
	return nil
}

// checkTLV applies the rules the specification gives for a registered
// type's value. Unregistered types are opaque.
func checkTLV(t TLV) error {
	switch t.Type {
	case PP2_TYPE_CRC32C:
		// 2.2.3: "a 32-bit number".
		if len(t.Value) != 4 {
			return invalidf("v2: CRC32C TLV of %d bytes, want 4", len(t.Value))
		}
	case PP2_TYPE_UNIQUE_ID:
		// 2.2.5: "an opaque byte sequence of up to 128 bytes".
		if len(t.Value) > MaxUniqueIDLen {
			return invalidf("v2: UNIQUE_ID TLV of %d bytes, limit %d", len(t.Value), MaxUniqueIDLen)
		}
	case PP2_TYPE_SSL:
		// 2.2.6: client (1 byte), verify (4 bytes), then sub-TLVs.
		if err := walkSSL(t.Value, nil); err != nil {
			return err
		}
	}
	return nil
}

// AppendV2 appends h as a v2 header (2.2) to dst: signature, version 2
// and command, family and protocol, length, addresses, then h.TLVs in
// order.
//
// A Local header is written as the specification asks senders to (2.2):
// family UNSPEC and no addresses, whatever h.Transport says; its TLVs are
// kept. A Proxy header needs addresses of its transport's family (IPv4
// for TCP4/UDP4, IPv6 for TCP6/UDP6, at most 108 bytes each for Unix).
//
// If h.TLVs holds a PP2_TYPE_CRC32C TLV, its value is ignored: 4 bytes are
// written and filled with the checksum of the finished header (2.2.3), so
// a caller puts TLV{Type: PP2_TYPE_CRC32C} where it wants the checksum.
//
// On error (an unknown command or transport, addresses of the wrong
// family, a TLV the parser would reject, more than 65535 bytes after the
// fixed part) dst is returned unchanged with an error wrapping ErrInvalid
// or ErrTooLong. It does not allocate if dst has room.
func (h *Header) AppendV2(dst []byte) ([]byte, error) {
	fam := h.Transport
	switch h.Command {
	case Local:
		fam = Unspec
	case Proxy:
		if fam.addrLen() < 0 {
			return dst, invalidf("v2: unknown transport 0x%02x", uint8(fam))
		}
	default:
		return dst, invalidf("v2: unknown command %d", h.Command)
	}
	src, dstAddr := h.Source.Addr(), h.Destination.Addr()
	switch fam {
	case TCP4, UDP4:
		if !src.Is4() || !dstAddr.Is4() {
			return dst, invalidf("v2: %s needs IPv4 addresses, have %v and %v", fam, src, dstAddr)
		}
	case TCP6, UDP6:
		if !src.Is6() || !dstAddr.Is6() {
			return dst, invalidf("v2: %s needs IPv6 addresses, have %v and %v", fam, src, dstAddr)
		}
		if src.Zone() != "" || dstAddr.Zone() != "" {
			return dst, invalidf("v2: IPv6 zones cannot be sent")
		}
	case UnixStream, UnixDgram:
		if len(h.SourceUnix) > UnixAddrLen || len(h.DestinationUnix) > UnixAddrLen {
			return dst, invalidf("v2: Unix address longer than %d bytes", UnixAddrLen)
		}
	}

	length := fam.addrLen()
	crcSeen := false
	for _, t := range h.TLVs {
		n := len(t.Value)
		if t.Type == PP2_TYPE_CRC32C {
			if crcSeen {
				return dst, invalidf("v2: more than one CRC32C TLV")
			}
			crcSeen, n = true, 4
		} else if err := checkTLV(t); err != nil {
			return dst, err
		}
		if n > 0xFFFF {
			return dst, fmt.Errorf("%w: v2: TLV 0x%02x of %d bytes", ErrTooLong, t.Type, n)
		}
		length += 3 + n
	}
	if length > 0xFFFF {
		return dst, fmt.Errorf("%w: v2: %d bytes after the fixed header, limit 65535", ErrTooLong, length)
	}

	start := len(dst)
	dst = append(dst, v2Signature[:]...)
	dst = append(dst, 0x20|byte(h.Command), byte(fam), byte(length>>8), byte(length))
	switch fam {
	case TCP4, UDP4:
		s4, d4 := src.As4(), dstAddr.As4()
		dst = append(dst, s4[:]...)
		dst = append(dst, d4[:]...)
		dst = binary.BigEndian.AppendUint16(dst, h.Source.Port())
		dst = binary.BigEndian.AppendUint16(dst, h.Destination.Port())
	case TCP6, UDP6:
		s16, d16 := src.As16(), dstAddr.As16()
		dst = append(dst, s16[:]...)
		dst = append(dst, d16[:]...)
		dst = binary.BigEndian.AppendUint16(dst, h.Source.Port())
		dst = binary.BigEndian.AppendUint16(dst, h.Destination.Port())
	case UnixStream, UnixDgram:
		dst = appendPadded(dst, h.SourceUnix, UnixAddrLen)
		dst = appendPadded(dst, h.DestinationUnix, UnixAddrLen)
	}
	crcAt := -1
	for _, t := range h.TLVs {
		if t.Type == PP2_TYPE_CRC32C {
			dst = append(dst, t.Type, 0, 4)
			crcAt = len(dst)
			dst = append(dst, zeroCRC[:]...)
			continue
		}
		dst = append(dst, t.Type, byte(len(t.Value)>>8), byte(len(t.Value)))
		dst = append(dst, t.Value...)
	}
	if crcAt >= 0 {
		// 2.2.3: checksum computed with the field at zero, then stored.
		binary.BigEndian.PutUint32(dst[crcAt:], crc32.Checksum(dst[start:], castagnoli))
	}
	return dst, nil
}

func appendPadded(dst, b []byte, n int) []byte {
	dst = append(dst, b...)
	for i := len(b); i < n; i++ {
		dst = append(dst, 0)
	}
	return dst
}
