package eventloop_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/eventloop"
)

// pingPong bounces one byte between the two ends of each connection,
// both registered on the same loop: every event is a real epoll event
// followed by one read and one write system call.
type pingPong struct {
	l      *eventloop.Loop
	fds    []int
	left   int
	events int
}

func (p *pingPong) Event(t eventloop.Token, r eventloop.Ready) {
	if !r.IsReadable() {
		return
	}
	p.events++
	fd := p.fds[t]
	var buf [1]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if n <= 0 || err != nil {
			break
		}
		if p.left <= 0 {
			p.l.Stop()
			return
		}
		p.left--
		unix.Write(fd, buf[:])
	}
}
func (p *pingPong) Timeout(eventloop.Token, eventloop.TimerName) {}
func (p *pingPong) Panic(eventloop.Token, any, []byte)           {}

// BenchmarkLoopEvent is the loop's cost per real event, kernel included:
// 64 connections in flight, b.N bounces in all. Each op is one readiness
// event, one read and one write.
func BenchmarkLoopEvent(b *testing.B) {
	lfd, addr := listener(b)
	l, err := eventloop.New(eventloop.Config{})
	if err != nil {
		b.Fatal(err)
	}
	const conns = 64
	p := &pingPong{l: l, left: b.N}
	for i := 0; i < conns; i++ {
		s, c := pair(b, lfd, addr)
		waitWritable(b, c)
		defer unix.Close(s)
		defer unix.Close(c)
		p.fds = append(p.fds, s, c)
		if err := l.Poller().Register(s, eventloop.Token(2*i), eventloop.InterestRead); err != nil {
			b.Fatal(err)
		}
		if err := l.Poller().Register(c, eventloop.Token(2*i+1), eventloop.InterestRead); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < conns; i++ {
		unix.Write(p.fds[2*i+1], []byte{'x'})
	}
	if err := l.Run(p); err != nil {
		b.Fatal(err)
	}
}
