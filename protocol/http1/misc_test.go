package http1

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The word-at-a-time scanners agree with the byte-at-a-time table scan,
// including around every byte value and at every alignment.
func TestScanWordAtATime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 64)
	for c := 0; c < 256; c++ {
		for at := 0; at < 10; at++ {
			for i := range buf {
				buf[i] = byte('a' + i%26)
			}
			buf[at+9] = byte(c)
			for start := 0; start < 9; start++ {
				for _, end := range []int{start, start + 5, start + 17, len(buf)} {
					require.Equal(t, scan(buf, start, end, cValue), scanValue(buf, start, end), "value c=%#x at=%d", c, at)
					require.Equal(t, scan(buf, start, end, cTarget), scanTarget(buf, start, end), "target c=%#x at=%d", c, at)
				}
			}
		}
	}
	for n := 0; n < 5000; n++ {
		for i := range buf {
			buf[i] = byte(0x20 + r.IntN(0x60))
			if r.IntN(40) == 0 {
				buf[i] = byte(r.IntN(256))
			}
		}
		s, e := r.IntN(len(buf)), len(buf)
		require.Equal(t, scan(buf, s, e, cValue), scanValue(buf, s, e))
		require.Equal(t, scan(buf, s, e, cTarget), scanTarget(buf, s, e))
	}
}

func TestChunkExtensions(t *testing.T) {
	for _, c := range []struct {
		ext string
		ok  bool
	}{
		{";a", true}, {";a=b", true}, {"; a = b ", false}, {"; a = b ;c", true}, {" ;a", true}, {"\t;\ta\t=\t\"x\"", true},
		{";a=\"\"", true}, {";a=\"x\\\"y\"", true}, {";a=\"\xe9\"", true}, {";a=\"\\\xe9\"", true}, {";a=\"x\" ;b", true},
		{";a=\"x\"b", false}, {";a=\"\\\x01\"", false}, {";a;b;c=d", true}, {";a b", false}, {";a =", false},
		{";=", false}, {";a=b=c", false}, {";a=b c", false}, {"\x01", false}, {";a\"", false}, {";a=\"x\" ", false},
		{";a ;", false},
	} {
		var bd Body
		bd.Init(BodyChunked, -1, Limits{})
		in := "1" + c.ext + "\r\nx\r\n0\r\n\r\n"
		n, done, err := bd.Parse([]byte(in))
		if c.ok {
			assert.NoError(t, err, "%q", c.ext)
			assert.True(t, done, "%q", c.ext)
			assert.Equal(t, len(in), n)
		} else {
			assert.Error(t, err, "%q", c.ext)
		}
	}
}

func TestCodingsAndMethods(t *testing.T) {
	for _, c := range []string{"gzip", "X-GZIP", "deflate", "compress", "x-compress"} {
		b := []byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + c + ", chunked\r\n\r\n")
		h, done, err := parseHead(b, Request, Limits{})
		require.NoError(t, err, c)
		require.True(t, done)
		require.True(t, h.Chunked)
	}
	for _, c := range []string{"br", "zstd", "gzip2", "x-deflate", "compres", "x-compres1"} {
		b := []byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + c + ", chunked\r\n\r\n")
		_, _, err := parseHead(b, Request, Limits{})
		require.ErrorIs(t, err, ErrUnknownEncoding, c)
	}
	for m, want := range map[string]Method{
		"GET": MethodGET, "HEAD": MethodHEAD, "POST": MethodPOST, "PUT": MethodPUT, "DELETE": MethodDELETE,
		"OPTIONS": MethodOPTIONS, "TRACE": MethodTRACE, "PATCH": MethodPATCH, "get": MethodOther, "PURGE": MethodOther,
	} {
		h, _, err := parseHead([]byte(m+" / HTTP/1.1\r\nHost: a\r\n\r\n"), Request, Limits{})
		require.NoError(t, err)
		assert.Equal(t, want, h.MethodID, m)
	}
	for k, s := range map[BodyKind]string{BodyNone: "none", BodyLength: "length", BodyChunked: "chunked", BodyUntilClose: "until-close", BodyTunnel: "tunnel", 9: "invalid"} {
		assert.Equal(t, s, k.String())
	}
	assert.Equal(t, "request", Request.String())
	var bd Body
	bd.Init(BodyLength, 2, Limits{})
	assert.Equal(t, BodyLength, bd.Kind())
	_, _, _ = bd.Parse([]byte("ab"))
	assert.True(t, bd.Done())
}
