//go:build linux

package eventloop

import (
	"testing"

	"golang.org/x/sys/unix"
)

type countingHandler struct{ events, sum int }

func (h *countingHandler) Event(t Token, r Ready) {
	h.events++
	h.sum += int(t) + int(r)
}
func (h *countingHandler) Timeout(Token, TimerName) {}
func (h *countingHandler) Panic(Token, any, []byte) {}

// BenchmarkDispatch measures what the loop adds per event on top of the
// kernel: decoding an epoll event into (Token, Ready) and calling the
// handler through its interface, with the batch's single deferred
// recover amortised over a full batch of 256.
func BenchmarkDispatch(b *testing.B) {
	l, err := New(Config{Events: 256})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	raw := l.events.raw
	for i := range raw {
		raw[i] = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(i)}
	}
	l.events.n = len(raw)
	h := &countingHandler{}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(raw) {
		for i := 0; i < l.events.Len(); {
			i = l.dispatchEvents(h, i)
		}
	}
}
