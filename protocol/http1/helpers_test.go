package http1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parseHead parses b in one call.
func parseHead(b []byte, kind Kind, limits Limits) (*Head, bool, error) {
	p := Parser{Limits: limits}
	h := &Head{}
	done, err := p.Parse(b, kind, h)
	return h, done, err
}

// fieldStrings renders the fields as "Name: Value" for comparisons.
func fieldStrings(b []byte, h *Head) []string {
	out := make([]string, 0, len(h.Fields))
	for _, f := range h.Fields {
		out = append(out, string(f.Name.Of(b))+": "+string(f.Value.Of(b)))
	}
	return out
}

// crlf turns "\n" into "\r\n" so tables stay readable; "\\n" in a test
// string stays a bare LF ("\x0a" is written as "\\n" then replaced back).
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\n", "\r\n")
	return strings.ReplaceAll(s, `\n`, "\n")
}

// checkSpans asserts that every span of h lies within the head.
func checkSpans(t testing.TB, b []byte, h *Head) {
	t.Helper()
	require.LessOrEqual(t, h.Len, len(b))
	in := func(s Span) {
		require.LessOrEqual(t, s.Start, s.End)
		require.LessOrEqual(t, int(s.End), h.Len)
	}
	for _, s := range []Span{h.Method, h.Target, h.Authority, h.Version, h.Reason, h.Upgrade, h.Host} {
		in(s)
	}
	prev := uint32(h.Start)
	for _, f := range h.Fields {
		in(f.Name)
		in(f.Value)
		require.GreaterOrEqual(t, f.Name.Start, prev)
		require.Less(t, f.Name.End, f.Value.Start+1)
		prev = f.Value.End
	}
}

// consumeBody feeds body bytes to a Body in pieces of size step (0: all
// at once) and returns the total accounted for, done and the error.
func consumeBody(bd *Body, b []byte, step int) (int, bool, error) {
	total := 0
	for {
		chunk := b[total:]
		if step > 0 && len(chunk) > step {
			chunk = chunk[:step]
		}
		n, done, err := bd.Parse(chunk)
		total += n
		if err != nil || done {
			return total, done, err
		}
		if n != len(chunk) {
			panic("Body.Parse left bytes without being done")
		}
		if total == len(b) {
			return total, false, nil
		}
	}
}
