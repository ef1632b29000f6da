package timer_test

import (
	"fmt"
	"time"

	"github.com/sluiceproxy/sluice/timer"
)

// Example drives a wheel with a virtual clock, as a loop drives it with
// the real one: schedule, push back, cancel, then poll what is due and
// ask when the next deadline is (the poller's wait timeout).
func Example() {
	now := time.Unix(0, 0)
	w := timer.New[string](timer.Config{Now: func() time.Time { return now }})

	idle := w.Schedule("idle", 30*time.Second)
	w.Schedule("request", 5*time.Second)
	retry := w.Schedule("retry", time.Second)
	w.Cancel(retry)
	w.Reset(idle, 10*time.Second) // activity: push the idle timeout back

	next, _ := w.NextDeadline()
	fmt.Println("next deadline in", next.Sub(now))

	now = now.Add(12 * time.Second)
	for {
		key, ok := w.Poll(now)
		if !ok {
			break
		}
		fmt.Println("fired:", key)
	}
	fmt.Println("pending:", w.Len())
	// Output:
	// next deadline in 5s
	// fired: request
	// fired: idle
	// pending: 0
}
