package h2

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// raw builds a frame byte by byte, independently of AppendFrameHeader, so
// that malformed frames can be written too.
func raw(t FrameType, fl Flags, sid uint32, payload ...byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), byte(t), byte(fl),
		byte(sid >> 24), byte(sid >> 16), byte(sid >> 8), byte(sid)}
	return append(b, payload...)
}

// dehex decodes hex with any spaces and newlines in it.
func dehex(s string) []byte {
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// parseOne parses b, which must be exactly one complete frame.
func parseOne(t testing.TB, b []byte) *Frame {
	t.Helper()
	var p Parser
	f, n, err := p.Next(b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	return &f
}

func requireConnErr(t testing.TB, err error, code ErrCode) {
	t.Helper()
	require.Error(t, err)
	var ce ConnectionError
	require.True(t, errors.As(err, &ce), "want ConnectionError, got %T: %v", err, err)
	require.Equal(t, code, ce.Code, "%v", err)
}

func requireStreamErr(t testing.TB, err error, sid uint32, code ErrCode) {
	t.Helper()
	require.Error(t, err)
	var se StreamError
	require.True(t, errors.As(err, &se), "want StreamError, got %T: %v", err, err)
	require.Equal(t, code, se.Code, "%v", err)
	require.Equal(t, sid, se.StreamID, "%v", err)
}

func hf(name, value string) HeaderField { return HeaderField{Name: name, Value: value} }
