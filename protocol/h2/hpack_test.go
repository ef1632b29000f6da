package h2

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	c3req1 = []HeaderField{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com")}
	c3req2 = append(append([]HeaderField(nil), c3req1...), hf("cache-control", "no-cache"))
	c3req3 = []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/index.html"), hf(":authority", "www.example.com"), hf("custom-key", "custom-value")}
)

// RFC 7541 Appendix C.3: request examples without Huffman coding; C.4:
// the same requests with Huffman coding. Each series shares one decoding
// context.
var (
	rfc7541C3 = []string{
		"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
		"8286 84be 5808 6e6f 2d63 6163 6865",
		"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
	}
	rfc7541C4 = []string{
		"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
		"8286 84be 5886 a8eb 1064 9cbf",
		"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
	}
)

func TestDecodeRFC7541Examples(t *testing.T) {
	want := [][]HeaderField{c3req1, c3req2, c3req3}
	for name, series := range map[string][]string{"C.3": rfc7541C3, "C.4": rfc7541C4} {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(DefaultHeaderTableSize, 0)
			var buf []HeaderField
			for i, h := range series {
				got, err := d.Decode(buf[:0], dehex(h))
				require.NoError(t, err, "%s.%d", name, i+1)
				require.Equal(t, want[i], got, "%s.%d", name, i+1)
				require.NoError(t, ValidateRequest(got))
				buf = got
			}
		})
	}
	// Both series one after the other through a single decoder: C.4's
	// references resolve against the entries C.4 itself inserted.
	d := NewDecoder(DefaultHeaderTableSize, 0)
	for i, h := range append(append([]string(nil), rfc7541C3...), rfc7541C4...) {
		got, err := d.Decode(nil, dehex(h))
		require.NoError(t, err)
		require.Equal(t, want[i%3], got, "block %d", i)
	}
}

func TestDecodeAppendsToDst(t *testing.T) {
	d := NewDecoder(DefaultHeaderTableSize, 0)
	dst := make([]HeaderField, 1, 8)
	dst[0] = hf("keep", "me")
	got, err := d.Decode(dst, dehex(rfc7541C3[0]))
	require.NoError(t, err)
	require.Equal(t, append([]HeaderField{hf("keep", "me")}, c3req1...), got)
	require.Same(t, &dst[0], &got[0])
}

func TestDecodeCompressionError(t *testing.T) {
	d := NewDecoder(DefaultHeaderTableSize, 0)
	for _, b := range []string{
		"be",         // index 62: the dynamic table is empty
		"80",         // index 0
		"8441",       // truncated literal
		"40 0a 6375", // truncated name
		"3fe21f",     // table size update to 4097, above the allowed 4096
	} {
		got, err := d.Decode(nil, dehex(b))
		requireConnErr(t, err, ErrCodeCompression)
		require.Empty(t, got)
	}
}

func TestDecodeSensitive(t *testing.T) {
	// RFC 7541 C.2.3: literal never indexed, password: secret.
	d := NewDecoder(DefaultHeaderTableSize, 0)
	got, err := d.Decode(nil, dehex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
	require.NoError(t, err)
	require.Equal(t, []HeaderField{{Name: "password", Value: "secret", Sensitive: true}}, got)
	// The encoder keeps it never-indexed.
	out := NewEncoder().Append(nil, got...)
	require.Equal(t, byte(0x10), out[0]&0xf0)
}

func TestHeaderListSizeLimit(t *testing.T) {
	// c3req1 is 4 fields: 7+3 + 7+4 + 5+1 + 10+15 + 4*32 = 180 octets.
	size := uint32(0)
	for _, f := range c3req1 {
		size += f.Size()
	}
	require.Equal(t, uint32(180), size)

	d := NewDecoder(DefaultHeaderTableSize, size)
	got, err := d.Decode(nil, dehex(rfc7541C3[0]))
	require.NoError(t, err, "exactly at the limit")
	require.Equal(t, c3req1, got)

	d = NewDecoder(DefaultHeaderTableSize, size-1)
	dst := []HeaderField{hf("x", "y")}
	got, err = d.Decode(dst, dehex(rfc7541C3[0]))
	require.ErrorIs(t, err, ErrHeaderListTooLarge)
	require.Equal(t, dst, got, "dst comes back as given")
	// The block was decoded to its end: the dynamic table holds
	// :authority, so the next block of the series decodes fine once the
	// limit allows it.
	d.MaxHeaderListSize = 0
	got, err = d.Decode(nil, dehex(rfc7541C3[1]))
	require.NoError(t, err)
	require.Equal(t, c3req2, got)

	// Indexed references cost nothing on the wire but count in full: a
	// 1 KiB dynamic entry referenced 100 times is ~100 KiB of list.
	enc := NewEncoder()
	big := hf("x-big", strings.Repeat("v", 1024))
	fields := []HeaderField{hf(":status", "200")}
	for i := 0; i < 100; i++ {
		fields = append(fields, big)
	}
	block := enc.Append(nil, fields...)
	require.Less(t, len(block), 1300)
	d = NewDecoder(DefaultHeaderTableSize, 64<<10)
	_, err = d.Decode(nil, block)
	require.ErrorIs(t, err, ErrHeaderListTooLarge)
	_, _, _, ok := Classify(err)
	require.False(t, ok, "the connection maps it: 431 or RST_STREAM, not a protocol error")
	// And the next block on the same connection still decodes.
	got, err = d.Decode(nil, enc.Append(nil, hf(":status", "204"), big))
	require.NoError(t, err)
	require.Equal(t, []HeaderField{hf(":status", "204"), big}, got)
}

func TestEncoderRoundTrip(t *testing.T) {
	enc := NewEncoder()
	dec := NewDecoder(DefaultHeaderTableSize, 0)
	reqs := [][]HeaderField{browserRequest, browserRequest, c3req3, nil}
	var block []byte
	for i, req := range reqs {
		block = enc.Append(block[:0], req...)
		got, err := dec.Decode(nil, block)
		require.NoError(t, err, "request %d", i)
		require.Equal(t, len(req), len(got))
		for j := range req {
			require.Equal(t, req[j], got[j])
		}
	}
	// The second identical request is mostly indexed references.
	first := enc.Append(nil, hf(":method", "GET"), hf("x-a", "1"))
	second := enc.Append(nil, hf(":method", "GET"), hf("x-a", "1"))
	assert.Less(t, len(second), len(first))
	_, err := dec.Decode(nil, first)
	require.NoError(t, err)
	_, err = dec.Decode(nil, second)
	require.NoError(t, err)

	// A smaller table limit from the peer's SETTINGS is announced at the
	// start of the next block and the decoder follows it.
	enc.SetMaxTableSizeLimit(0)
	block = enc.Append(nil, hf("x-b", "2"))
	require.Equal(t, byte(0x20), block[0], "dynamic table size update to 0")
	got, err := dec.Decode(nil, block)
	require.NoError(t, err)
	require.Equal(t, []HeaderField{hf("x-b", "2")}, got)
	enc.SetMaxTableSize(0)

	// Our own, lower SETTINGS_HEADER_TABLE_SIZE: a peer asking for more is
	// a compression error.
	dec2 := NewDecoder(DefaultHeaderTableSize, 0)
	dec2.SetMaxTableSize(100)
	_, err = dec2.Decode(nil, dehex("3f45")) // size update to 100
	require.NoError(t, err)
	_, err = dec2.Decode(nil, dehex("3f46")) // size update to 101
	requireConnErr(t, err, ErrCodeCompression)
}

// browserRequest is a typical first request of a browser on a connection.
var browserRequest = []HeaderField{
	hf(":method", "GET"),
	hf(":authority", "www.example.com"),
	hf(":scheme", "https"),
	hf(":path", "/assets/app.js?v=3f2a9c"),
	hf("sec-ch-ua", `"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"`),
	hf("sec-ch-ua-mobile", "?0"),
	hf("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
	hf("sec-ch-ua-platform", `"Linux"`),
	hf("accept", "*/*"),
	hf("sec-fetch-site", "same-origin"),
	hf("sec-fetch-mode", "no-cors"),
	hf("sec-fetch-dest", "script"),
	hf("referer", "https://www.example.com/"),
	hf("accept-encoding", "gzip, deflate, br, zstd"),
	hf("accept-language", "en-GB,en-US;q=0.9,en;q=0.8"),
	hf("cookie", "session=5b0a1c2d3e4f; theme=dark; _ga=GA1.2.123456789.1700000000"),
	hf("priority", "u=1"),
}

func TestValidateRequest(t *testing.T) {
	base := func(extra ...HeaderField) []HeaderField {
		return append([]HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":authority", "example.com"), hf(":path", "/")}, extra...)
	}
	valid := map[string][]HeaderField{
		"browser":                 browserRequest,
		"minimal":                 base(),
		"no authority":            {hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/x")},
		"te trailers":             base(hf("te", "trailers")),
		"te Trailers":             base(hf("te", "Trailers")),
		"empty value":             base(hf("x-empty", "")),
		"inner whitespace":        base(hf("x-a", "a b\tc")),
		"obs-text value":          base(hf("x-a", "caf\xc3\xa9")),
		"CONNECT":                 {hf(":method", "CONNECT"), hf(":authority", "example.com:443")},
		"extended CONNECT":        {hf(":method", "CONNECT"), hf(":protocol", "websocket"), hf(":scheme", "https"), hf(":path", "/chat"), hf(":authority", "example.com")},
		"OPTIONS *":               {hf(":method", "OPTIONS"), hf(":scheme", "https"), hf(":path", "*"), hf(":authority", "example.com")},
		"host equal to authority": base(hf("host", "EXAMPLE.com")),
		"host without authority":  {hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf("host", "a.example")},
		"other scheme path":       {hf(":method", "GET"), hf(":scheme", "foo"), hf(":path", "bar")},
		"query":                   base(hf("x", "1"))[:3:3],
	}
	valid["query"] = append(valid["query"], hf(":path", "/a?b=c&d"))
	for name, fields := range valid {
		require.NoError(t, ValidateRequest(fields), name)
	}

	invalid := []struct {
		name   string
		fields []HeaderField
		want   error
	}{
		{"uppercase name", base(hf("X-Foo", "1")), errNameChar},
		{"space in name", base(hf("x foo", "1")), errNameChar},
		{"colon in name", base(hf("x:foo", "1")), errNameChar},
		{"DEL in name", base(hf("x\x7f", "1")), errNameChar},
		{"non-ASCII name", base(hf("x\xc3\xa9", "1")), errNameChar},
		{"empty name", base(hf("", "1")), errEmptyName},
		{"CR in value", base(hf("x", "a\rb")), errValueChar},
		{"LF in value", base(hf("x", "a\nb")), errValueChar},
		{"NUL in value", base(hf("x", "a\x00b")), errValueChar},
		{"leading space", base(hf("x", " a")), errValueSpace},
		{"trailing tab", base(hf("x", "a\t")), errValueSpace},
		{"only space", base(hf("x", " ")), errValueSpace},
		{"CR in pseudo value", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/\r\nx")}, errValueChar},
		{"connection", base(hf("connection", "close")), errConnSpecific},
		{"keep-alive", base(hf("keep-alive", "timeout=5")), errConnSpecific},
		{"proxy-connection", base(hf("proxy-connection", "keep-alive")), errConnSpecific},
		{"transfer-encoding", base(hf("transfer-encoding", "chunked")), errConnSpecific},
		{"upgrade", base(hf("upgrade", "websocket")), errConnSpecific},
		{"te gzip", base(hf("te", "gzip")), errTE},
		{"te trailers, gzip", base(hf("te", "trailers, gzip")), errTE},
		{"pseudo after regular", append(base(hf("x", "1")), hf(":protocol", "websocket")), errPseudoAfter},
		{"unknown pseudo", base(hf(":foo", "bar")), errPseudoUnknown},
		{":status in request", base(hf(":status", "200")), errPseudoUnknown},
		{"duplicate :path", base(hf(":path", "/again")), errPseudoDup},
		{"duplicate :method", base(hf(":method", "GET")), errPseudoDup},
		{"missing :method", []HeaderField{hf(":scheme", "https"), hf(":path", "/")}, errNoMethod},
		{"missing :scheme", []HeaderField{hf(":method", "GET"), hf(":path", "/")}, errNoScheme},
		{"missing :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https")}, errNoPath},
		{"empty :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "")}, errEmptyPath},
		{"empty :path other scheme", []HeaderField{hf(":method", "GET"), hf(":scheme", "foo"), hf(":path", "")}, errEmptyPath},
		{"empty :method", []HeaderField{hf(":method", ""), hf(":scheme", "https"), hf(":path", "/")}, errMethod},
		{"bad :method", []HeaderField{hf(":method", "GE T"), hf(":scheme", "https"), hf(":path", "/")}, errMethod},
		{"bad :scheme", []HeaderField{hf(":method", "GET"), hf(":scheme", "ht tp"), hf(":path", "/")}, errScheme},
		{"digit-first :scheme", []HeaderField{hf(":method", "GET"), hf(":scheme", "1http"), hf(":path", "/")}, errScheme},
		{"relative :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "index.html")}, errPath},
		{"* without OPTIONS", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "*")}, errPath},
		{"space in :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/a b")}, errPath},
		{"fragment in :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/a#b")}, errPath},
		{"non-ASCII :path", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/caf\xc3\xa9")}, errPath},
		{"userinfo in :authority", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/"), hf(":authority", "user@example.com")}, errAuthority},
		{"space in :authority", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/"), hf(":authority", "a b")}, errAuthority},
		{"empty :authority", []HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/"), hf(":authority", "")}, errAuthority},
		{"CONNECT without :authority", []HeaderField{hf(":method", "CONNECT")}, errNoAuthority},
		{"CONNECT with :path", []HeaderField{hf(":method", "CONNECT"), hf(":authority", "a:443"), hf(":path", "/")}, errConnectExtra},
		{"CONNECT with :scheme", []HeaderField{hf(":method", "CONNECT"), hf(":authority", "a:443"), hf(":scheme", "https")}, errConnectExtra},
		{"extended CONNECT without :path", []HeaderField{hf(":method", "CONNECT"), hf(":protocol", "websocket"), hf(":scheme", "https"), hf(":authority", "a")}, errNoPath},
		{"extended CONNECT without :authority", []HeaderField{hf(":method", "CONNECT"), hf(":protocol", "websocket"), hf(":scheme", "https"), hf(":path", "/")}, errNoAuthority},
		{":protocol with GET", base(hf(":protocol", "websocket")), errProtocol},
		{"host differs", base(hf("host", "evil.example")), errHostMismatch},
		{"second host differs", base(hf("host", "example.com"), hf("host", "evil.example")), errHostMismatch},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateRequest(c.fields)
			require.Equal(t, c.want, err)
			requireStreamErr(t, err, 0, ErrCodeProtocol)
		})
	}
}

func TestValidateResponse(t *testing.T) {
	for _, fields := range [][]HeaderField{
		{hf(":status", "200")},
		{hf(":status", "100")},
		{hf(":status", "599"), hf("content-type", "text/html"), hf("set-cookie", "a=b")},
		{hf(":status", "204"), hf("te", "trailers")},
	} {
		require.NoError(t, ValidateResponse(fields))
	}
	invalid := []struct {
		name   string
		fields []HeaderField
		want   error
	}{
		{"missing :status", []HeaderField{hf("content-type", "text/html")}, errNoStatus},
		{"empty", nil, errNoStatus},
		{"duplicate :status", []HeaderField{hf(":status", "200"), hf(":status", "200")}, errPseudoDup},
		{"request pseudo", []HeaderField{hf(":status", "200"), hf(":path", "/")}, errPseudoUnknown},
		{"unknown pseudo", []HeaderField{hf(":foo", "1"), hf(":status", "200")}, errPseudoUnknown},
		{":status after regular", []HeaderField{hf("x", "1"), hf(":status", "200")}, errPseudoAfter},
		{"two digits", []HeaderField{hf(":status", "20")}, errStatus},
		{"four digits", []HeaderField{hf(":status", "2000")}, errStatus},
		{"letters", []HeaderField{hf(":status", "2x0")}, errStatus},
		{"600", []HeaderField{hf(":status", "600")}, errStatus},
		{"099", []HeaderField{hf(":status", "099")}, errStatus},
		{"101", []HeaderField{hf(":status", "101")}, errStatus},
		{"with reason", []HeaderField{hf(":status", "200 OK")}, errStatus},
		{"uppercase name", []HeaderField{hf(":status", "200"), hf("Content-Type", "x")}, errNameChar},
		{"transfer-encoding", []HeaderField{hf(":status", "200"), hf("transfer-encoding", "chunked")}, errConnSpecific},
		{"connection", []HeaderField{hf(":status", "200"), hf("connection", "keep-alive")}, errConnSpecific},
		{"LF in value", []HeaderField{hf(":status", "200"), hf("location", "/a\nb")}, errValueChar},
		{"trailing space", []HeaderField{hf(":status", "200"), hf("location", "/a ")}, errValueSpace},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateResponse(c.fields)
			require.Equal(t, c.want, err)
			requireStreamErr(t, err, 0, ErrCodeProtocol)
		})
	}
}

func TestValidateTrailers(t *testing.T) {
	require.NoError(t, ValidateTrailers(nil))
	require.NoError(t, ValidateTrailers([]HeaderField{hf("grpc-status", "0"), hf("grpc-message", "")}))
	require.Equal(t, errPseudoInTrailers, ValidateTrailers([]HeaderField{hf(":status", "200")}))
	require.Equal(t, errNameChar, ValidateTrailers([]HeaderField{hf("Grpc-Status", "0")}))
	require.Equal(t, errConnSpecific, ValidateTrailers([]HeaderField{hf("transfer-encoding", "chunked")}))
}

func TestHeaderField(t *testing.T) {
	require.True(t, hf(":path", "/").IsPseudo())
	require.False(t, hf("path", "/").IsPseudo())
	require.False(t, hf("", "").IsPseudo())
	require.Equal(t, uint32(3+1+32), hf("abc", "d").Size())
}
