package session_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session"
)

// runWorker runs a worker until the test ends.
func runWorker(tb testing.TB, cfg session.Config) *session.Worker {
	w, err := session.NewWorker(cfg)
	require.NoError(tb, err)
	done := make(chan error, 1)
	go func() { done <- w.Run() }()
	tb.Cleanup(func() {
		require.NoError(tb, w.HardStop())
		require.NoError(tb, <-done)
	})
	require.NoError(tb, w.Exec(func(*session.Loop) error { return nil })) // running
	return w
}

// A running loop keeps a P while it waits for events, so a loop that
// hands work to goroutines asks for one more than the loops: with
// GOMAXPROCS at 1, a goroutine the loop wakes would wait for the
// runtime's monitor to take the P back.
func TestSparePIsOneMoreThanTheLoops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	spare := func(w *session.Worker) {
		require.NoError(t, w.Exec(func(l *session.Loop) error { l.SpareP(); return nil }))
	}
	w := runWorker(t, session.Config{})
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "not raised before it is asked for")
	spare(w)
	assert.Equal(t, 2, runtime.GOMAXPROCS(0))
	spare(w)
	assert.Equal(t, 2, runtime.GOMAXPROCS(0), "once per worker")
	runWorker(t, session.Config{})
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "a loop that starts later keeps it one more than the loops")

	runtime.GOMAXPROCS(1)
	spare(runWorker(t, session.Config{KeepGOMAXPROCS: true}))
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "left alone when asked")
	runWorker(t, session.Config{KeepGOMAXPROCS: true, SpareP: true})
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "keep wins over SpareP")
}

// Config.SpareP keeps the spare P from the start, without a session
// asking for it.
func TestConfigSparePRaisesAtStart(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runWorker(t, session.Config{})
	assert.Equal(t, 1, runtime.GOMAXPROCS(0))
	runWorker(t, session.Config{SpareP: true})
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "one more than the two loops")
	runWorker(t, session.Config{})
	assert.Equal(t, 4, runtime.GOMAXPROCS(0), "still one more than the loops")
}

// BenchmarkExecRoundTrip is a command's round trip to an idle loop and
// back: the crossing a TLS handshake makes between its pool goroutine
// and the loop. With GOMAXPROCS 1 and no spare P (keep), the answer
// waits for the runtime's monitor; with the spare (Loop.SpareP), it
// does not.
func BenchmarkExecRoundTrip(b *testing.B) {
	for _, keep := range []bool{true, false} {
		name := "spare"
		if keep {
			name = "keep"
		}
		b.Run(name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			w := runWorker(b, session.Config{KeepGOMAXPROCS: keep})
			require.NoError(b, w.Exec(func(l *session.Loop) error { l.SpareP(); return nil }))
			b.ReportAllocs()
			var worst time.Duration
			for range b.N {
				start := time.Now()
				require.NoError(b, w.Exec(func(*session.Loop) error { return nil }))
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
		})
	}
}
