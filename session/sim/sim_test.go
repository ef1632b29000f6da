package sim_test

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/sim"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run this one seed (and print its trace)")
	seedsFlag = flag.Int("seeds", 0, "seeds per scenario (default: SLUICE_SIM_SEEDS, else 300)")
)

// TestMain turns the loop-ownership check off: a simulation runs on one
// goroutine, so the check (a stack read per loop call) could only cost.
func TestMain(m *testing.M) {
	os.Setenv("SLUICE_CHECKLOOP", "0")
	os.Exit(m.Run())
}

// seeds runs scenario over the seeds of this run: -seed N alone, or
// the first -seeds (from 1), plus every seed that once failed (the
// corpus in testdata/seeds/<name>).
func seeds(t *testing.T, name string, scenario func(seed uint64) (*sim.Net, error)) {
	t.Helper()
	var list []uint64
	if *seedFlag != 0 {
		list = []uint64{*seedFlag}
	} else {
		n := *seedsFlag
		if n == 0 {
			n = 300
			if v, err := strconv.Atoi(os.Getenv("SLUICE_SIM_SEEDS")); err == nil && v > 0 {
				n = v
			}
		}
		if b, err := os.ReadFile("testdata/seeds/" + name); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if v, err := strconv.ParseUint(f, 10, 64); err == nil {
					list = append(list, v)
				}
			}
		}
		for i := 1; i <= n; i++ {
			list = append(list, uint64(i))
		}
	}
	for _, seed := range list {
		net, err := scenario(seed)
		if err != nil {
			trace := ""
			if net != nil {
				trace = net.Trace()
			}
			t.Fatalf("%s: %v\nreplay: go test ./session/sim -run '%s' -seed %d\nlast events:\n%s", name, err, t.Name(), seed, trace)
		}
		if *seedFlag != 0 && net != nil {
			t.Logf("seed %d:\n%s", seed, net.Trace())
		}
	}
	t.Logf("%s: %d seeds clean", name, len(list))
}

// stopWhenDone soft-stops the worker once done reports true, and fails
// the run when the stop does not end in time.
func stopWhenDone(n *sim.Net, w *session.Worker, done func() bool) func() {
	stopping := false
	return func() {
		if stopping {
			return
		}
		if done() {
			stopping = true
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := w.SoftStop(ctx); err != nil { // on the loop: starts the stop and returns
				n.Fail("soft stop: %v", err)
			}
			n.After(5*time.Minute, func() {
				select {
				case <-w.Done():
					return // it ended
				default:
				}
				st, _ := w.Status()
				n.Fail("the soft stop did not end: %+v", st)
			})
		}
	}
}

// newRun is a scenario's start: the network for seed, with every fault
// (and a trace of every call when one seed is replayed), and a worker on
// it.
func newRun(seed uint64) (*sim.Net, *session.Worker, error) {
	n := sim.New(seed, sim.AllFaults)
	n.Verbose = *seedFlag != 0
	w, err := session.NewWorker(n.Config(session.Config{MaxConnections: 64}))
	return n, w, err
}

// allDone reports whether every client of *clients (filled by the
// scenario's start) has ended.
func allDone[C any](clients *[]C, ended func(C) bool) func() bool {
	return func() bool {
		for _, c := range *clients {
			if !ended(c) {
				return false
			}
		}
		return true
	}
}

// sendPiece sends the next piece of payload from *sent on (at most max
// bytes) and comes back a moment later through again; once everything
// is sent it half-closes.
func sendPiece(n *sim.Net, conn *sim.Conn, payload []byte, sent *int, max int, again func()) {
	if *sent == len(payload) {
		conn.CloseWrite()
		return
	}
	k := min(len(payload)-*sent, 1+n.Rand().IntN(max))
	conn.Send(payload[*sent : *sent+k])
	*sent += k
	n.After(time.Duration(n.Rand().IntN(3))*time.Millisecond, again)
}

// A seed replays the same way: the same events at the same times. The
// proxy's order of events must not depend on a map's iteration or on
// real time, or a failing seed would not always fail again. (TLS is left
// out: its handshakes draw from crypto/rand, so record sizes differ.)
func TestSimReplaysTheSameWay(t *testing.T) {
	for name, run := range map[string]func(uint64) (*sim.Net, error){"tcp": runTCP, "http": runHTTP, "h2": runH2, "ws": runWS} {
		for seed := uint64(1); seed <= 40; seed++ {
			a, errA := run(seed)
			b, errB := run(seed)
			if (errA == nil) != (errB == nil) || a.Now() != b.Now() || a.Trace() != b.Trace() {
				t.Fatalf("%s seed %d ran two ways: ended at %v and %v (%v, %v)\nfirst:\n%s\nsecond:\n%s", name, seed, a.Now(), b.Now(), errA, errB, a.Trace(), b.Trace())
			}
		}
	}
}
