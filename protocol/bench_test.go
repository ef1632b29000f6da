//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"testing"
)

// BenchmarkReadWrite: one 1 KiB Write on one end and the Read of it on
// the other, per op.
func BenchmarkReadWrite(b *testing.B) {
	checkFDs(b)
	client, server := newPair(b, loop4)
	msg := randomBytes(1024, 7)
	buf := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if n, r := client.Write(msg); n != len(msg) || r != Continue {
			b.Fatalf("Write = %d, %v", n, r)
		}
		if n, r := readSpin(server, buf); n != len(buf) || r != Continue {
			b.Fatalf("Read = %d, %v", n, r)
		}
	}
}

// BenchmarkWritev: one Writev of 3 buffers (1 KiB in all) and the Read of
// it on the peer, per op; /one gives Writev a single buffer (an HTTP/2
// stream's request to its backend), which takes the plain write call.
func BenchmarkWritev(b *testing.B) {
	msg := randomBytes(1024, 8)
	b.Run("three", func(b *testing.B) { benchWritev(b, [][]byte{msg[:100], msg[100:500], msg[500:]}) })
	b.Run("one", func(b *testing.B) { benchWritev(b, [][]byte{msg}) })
}

func benchWritev(b *testing.B, bufs [][]byte) {
	checkFDs(b)
	client, server := newPair(b, loop4)
	msg := make([]byte, 0, 1024)
	for _, p := range bufs {
		msg = append(msg, p...)
	}
	buf := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if n, r := client.Writev(bufs); n != len(msg) || r != Continue {
			b.Fatalf("Writev = %d, %v", n, r)
		}
		if n, r := readSpin(server, buf); n != len(buf) || r != Continue {
			b.Fatalf("Read = %d, %v", n, r)
		}
	}
}
