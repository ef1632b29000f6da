package h2

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

// HeaderField is one decoded field line (RFC 9113 §8.2).
type HeaderField struct {
	Name  string
	Value string
	// Sensitive is set for a field the peer sent as a never-indexed
	// literal (RFC 7541 §6.2.3). An intermediary must forward it the same
	// way (RFC 7541 §7.1.3), which Encoder does.
	Sensitive bool
}

// IsPseudo reports whether f is a pseudo-header field (RFC 9113 §8.3).
func (f HeaderField) IsPseudo() bool { return len(f.Name) != 0 && f.Name[0] == ':' }

// Size is the field's size for SETTINGS_MAX_HEADER_LIST_SIZE and the HPACK
// table: name and value lengths plus 32 (RFC 9113 §6.5.2, RFC 7541 §4.1).
func (f HeaderField) Size() uint32 { return uint32(len(f.Name) + len(f.Value) + 32) }

// ErrHeaderListTooLarge is returned by Decoder.Decode when the decoded
// list exceeds the decoder's MaxHeaderListSize. The block was decoded to
// its end, so the HPACK state is intact and the connection goes on: a
// server answers the stream with 431 (RFC 6585 §5, RFC 9113 §10.5.1) or
// resets it, a client resets it and treats the response as failed.
var ErrHeaderListTooLarge = errors.New("h2: header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")

// Decoder decodes complete field blocks (RFC 9113 §4.3) with one
// connection's HPACK decoding context (RFC 7541). Blocks must be decoded
// in the order their frames arrived, every one of them, even for streams
// being reset: skipping one desynchronises the dynamic table.
type Decoder struct {
	hd *hpack.Decoder
	// MaxHeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE this
	// endpoint advertised; 0 means no limit.
	MaxHeaderListSize uint32

	out      []HeaderField
	size     uint64
	tooLarge bool
}

// NewDecoder returns a decoder whose dynamic table may grow to
// maxTableSize octets (this endpoint's SETTINGS_HEADER_TABLE_SIZE,
// DefaultHeaderTableSize unless advertised otherwise) and that rejects
// header lists larger than maxHeaderListSize (0: no limit).
func NewDecoder(maxTableSize, maxHeaderListSize uint32) *Decoder {
	d := &Decoder{MaxHeaderListSize: maxHeaderListSize}
	d.hd = hpack.NewDecoder(maxTableSize, d.emit)
	return d
}

// SetMaxTableSize sets the largest dynamic table the peer may ask for,
// once the peer acknowledged a new SETTINGS_HEADER_TABLE_SIZE.
func (d *Decoder) SetMaxTableSize(v uint32) { d.hd.SetAllowedMaxDynamicTableSize(v) }

func (d *Decoder) emit(f hpack.HeaderField) {
	if d.tooLarge {
		return
	}
	d.size += uint64(len(f.Name)) + uint64(len(f.Value)) + 32
	if d.MaxHeaderListSize != 0 && d.size > uint64(d.MaxHeaderListSize) {
		// Keep decoding to keep the table in sync, but stop producing
		// (and, for literals, Huffman-decoding) strings.
		d.tooLarge = true
		d.hd.SetEmitEnabled(false)
		return
	}
	d.out = append(d.out, HeaderField{Name: f.Name, Value: f.Value, Sensitive: f.Sensitive})
}

// Decode decodes the complete field block block (a HEADERS or
// PUSH_PROMISE fragment followed by its CONTINUATION fragments, joined by
// the caller) and appends its fields to dst. Pass dst[:0] of a slice kept
// between calls: appending then costs nothing beyond the strings HPACK
// itself allocates for literal fields.
//
// An HPACK decoding error is a ConnectionError of type COMPRESSION_ERROR
// (RFC 9113 §4.3). A list over MaxHeaderListSize is ErrHeaderListTooLarge.
// On error dst is returned as it was given. Decode checks the encoding
// only: see ValidateRequest, ValidateResponse and ValidateTrailers for
// the HTTP rules.
//
// The caller bounds len(block), e.g. to a few times MaxHeaderListSize:
// this layer never sees CONTINUATION frames.
func (d *Decoder) Decode(dst []HeaderField, block []byte) ([]HeaderField, error) {
	d.out = dst
	d.size = 0
	d.tooLarge = false
	_, err := d.hd.Write(block)
	if cerr := d.hd.Close(); err == nil {
		err = cerr
	}
	out, tooLarge := d.out, d.tooLarge
	d.out = nil
	d.hd.SetEmitEnabled(true)
	if err != nil {
		return dst, ConnectionError{Code: ErrCodeCompression, Reason: "HPACK: " + err.Error()}
	}
	if tooLarge {
		return dst, ErrHeaderListTooLarge
	}
	return out, nil
}

// Encoder encodes field blocks with one connection's HPACK encoding
// context. Fields are encoded as given: names must already be lowercase.
// A Sensitive field is encoded as a never-indexed literal; other fields
// are indexed when the hpack package thinks it worthwhile.
type Encoder struct {
	he *hpack.Encoder
	w  appendWriter
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// NewEncoder returns an encoder with the initial 4096-octet dynamic table.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.he = hpack.NewEncoder(&e.w)
	return e
}

// SetMaxTableSizeLimit applies the peer's SETTINGS_HEADER_TABLE_SIZE: the
// table never grows beyond v, and shrinks to it if it is larger (a size
// update is then sent at the start of the next block).
func (e *Encoder) SetMaxTableSizeLimit(v uint32) { e.he.SetMaxDynamicTableSizeLimit(v) }

// SetMaxTableSize chooses a table size at or below the limit.
func (e *Encoder) SetMaxTableSize(v uint32) { e.he.SetMaxDynamicTableSize(v) }

// Append encodes fields as one field block appended to dst. The caller
// splits the result into HEADERS and CONTINUATION frames if it exceeds
// the peer's SETTINGS_MAX_FRAME_SIZE.
func (e *Encoder) Append(dst []byte, fields ...HeaderField) []byte {
	e.w.b = dst
	for i := range fields {
		f := &fields[i]
		// Writes to appendWriter never fail.
		_ = e.he.WriteField(hpack.HeaderField{Name: f.Name, Value: f.Value, Sensitive: f.Sensitive})
	}
	dst = e.w.b
	e.w.b = nil
	return dst
}
