package http1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type outcome struct {
	head     Head
	done     bool
	err      error
	bodyUsed int
	bodyDone bool
	bodyErr  error
}

// oneShot parses b (a whole message, maybe followed by more) in one call
// per stage.
func oneShot(b []byte, kind Kind, reqHEAD, reqCONNECT bool) outcome {
	var o outcome
	var p Parser
	o.done, o.err = p.Parse(b, kind, &o.head)
	if !o.done {
		return o
	}
	k, n := o.head.Body(reqHEAD, reqCONNECT)
	var bd Body
	bd.Init(k, n, Limits{})
	o.bodyUsed, o.bodyDone, o.bodyErr = bd.Parse(b[o.head.Len:])
	return o
}

// pieces parses b growing the head buffer at the given cut points, then
// feeds the body in pieces cut at the same points.
func pieces(t *testing.T, b []byte, kind Kind, reqHEAD, reqCONNECT bool, cuts []int) outcome {
	var o outcome
	var p Parser
	for _, c := range append(cuts, len(b)) {
		o.done, o.err = p.Parse(b[:c], kind, &o.head)
		if o.err != nil || o.done {
			break
		}
		// The scan position is at the end of what was given: the next
		// call starts there and re-examines nothing.
		require.Equal(t, min(c, DefaultMaxHead), p.Offset())
	}
	if !o.done {
		return o
	}
	k, n := o.head.Body(reqHEAD, reqCONNECT)
	var bd Body
	bd.Init(k, n, Limits{})
	off := o.head.Len
	for _, c := range append(cuts, len(b)) {
		if c < off {
			continue // an empty piece right after the head is still fed once
		}
		used, done, err := bd.Parse(b[off:c])
		o.bodyUsed += used
		o.bodyDone, o.bodyErr = done, err
		if err != nil || done {
			break
		}
		require.Equal(t, c-off, used)
		off = c
		if off == len(b) {
			break
		}
	}
	return o
}

func sameOutcome(t *testing.T, want, got outcome, msg string) {
	t.Helper()
	if len(want.head.Fields) == 0 {
		want.head.Fields = nil
	}
	if len(got.head.Fields) == 0 {
		got.head.Fields = nil
	}
	require.Equal(t, want, got, msg)
}

// Every valid message (and every bad one) gives the same result whether
// it arrives at once, split in two at any point, or one byte at a time.
func TestIncremental(t *testing.T) {
	type msg struct {
		name                string
		b                   []byte
		kind                Kind
		reqHEAD, reqCONNECT bool
	}
	var all []msg
	for _, c := range validCases() {
		all = append(all, msg{c.name, c.bytes(), c.kind, c.reqHEAD, c.reqCONNECT})
	}
	for _, c := range badRequests() {
		all = append(all, msg{"bad " + c.name, []byte(crlf(c.in)), Request, false, false})
	}
	for _, m := range all {
		t.Run(m.name, func(t *testing.T) {
			want := oneShot(m.b, m.kind, m.reqHEAD, m.reqCONNECT)
			step := 1
			if len(m.b) > 2000 { // long cases (limits): a stride keeps -race fast
				step = 61
			}
			for k := 0; k <= len(m.b); k += step {
				got := pieces(t, m.b, m.kind, m.reqHEAD, m.reqCONNECT, []int{k})
				sameOutcome(t, want, got, "split at "+itoa(k))
			}
			bytewise := make([]int, len(m.b))
			for i := range bytewise {
				bytewise[i] = i
			}
			sameOutcome(t, want, pieces(t, m.b, m.kind, m.reqHEAD, m.reqCONNECT, bytewise), "byte at a time")
		})
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// A chunked body fed in every possible pair of pieces.
func TestChunkedEverySplit(t *testing.T) {
	body := []byte(crlf("5;name=val;q=\"quoted \\\" str\"\nhello\n6 ; ext\n world\n0\nX-Checksum: abc\n\nNEXT"))
	end := len(body) - len("NEXT")
	for k := 0; k <= len(body); k++ {
		var bd Body
		bd.Init(BodyChunked, -1, Limits{})
		n1, done, err := bd.Parse(body[:k])
		require.NoError(t, err)
		if done {
			require.Equal(t, end, n1)
			continue
		}
		require.Equal(t, k, n1)
		n2, done, err := bd.Parse(body[k:])
		require.NoError(t, err)
		require.True(t, done)
		require.Equal(t, end, n1+n2)
		require.Equal(t, int64(end), bd.Consumed())
	}
}
