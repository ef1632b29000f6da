//go:build linux || darwin || freebsd || openbsd || dragonfly

package eventloop_test

import (
	"fmt"
	"os"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
)

// pipeHandler prints what the loop dispatches: readiness of one pipe's
// read end, and one timer.
type pipeHandler struct {
	loop *eventloop.Loop
	r    *os.File
}

func (h *pipeHandler) Event(t eventloop.Token, r eventloop.Ready) {
	buf := make([]byte, 64)
	n, _ := h.r.Read(buf) // edge-triggered: a real reader drains until EAGAIN
	fmt.Printf("token %d readable: %q\n", t, buf[:n])
	h.loop.Timers().Schedule(eventloop.TimerKey{Token: 2}, 10*time.Millisecond)
}

func (h *pipeHandler) Timeout(t eventloop.Token, _ eventloop.TimerName) {
	fmt.Printf("timer %d fired\n", t)
	h.loop.Stop()
}

func (h *pipeHandler) Panic(t eventloop.Token, v any, _ []byte) { panic(v) }

// Example registers a descriptor under a token, gets its readiness, arms
// a timer keyed by another token, and stops; work from other goroutines
// arrives through Post.
func Example() {
	loop, err := eventloop.New(eventloop.Config{})
	if err != nil {
		panic(err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	h := &pipeHandler{loop: loop, r: r}
	if err := loop.Poller().Register(int(r.Fd()), 1, eventloop.InterestRead); err != nil {
		panic(err)
	}
	loop.Post(func() { w.WriteString("hello") }) // runs on the loop
	if err := loop.Run(h); err != nil {
		panic(err)
	}
	// Output:
	// token 1 readable: "hello"
	// timer 2 fired
}
