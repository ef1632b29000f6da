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
// it on the peer, per op.
func BenchmarkWritev(b *testing.B) {
	checkFDs(b)
	client, server := newPair(b, loop4)
	msg := randomBytes(1024, 8)
	bufs := [][]byte{msg[:100], msg[100:500], msg[500:]}
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
