package backend

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// t0 is the virtual clock's origin; tests add durations to it and never
// sleep.
var t0 = time.Unix(1_700_000_000, 0)

// allPolicies lists every policy, for table-driven tests.
var allPolicies = []Policy{RoundRobin, Random, LeastConnections, PowerOfTwo, Maglev, RingHash}

// addr returns a distinct, valid backend address for i.
func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 8080)
}

// seeded returns a deterministic random generator for Config.Rand.
func seeded() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// spec describes a backend to add in newCluster.
type spec struct {
	id     string
	weight int
	backup bool
}

// newCluster returns a registry with one cluster "c" using policy p and the
// given backends, in order.
func newCluster(t testing.TB, cfg Config, p Policy, specs ...spec) (*Clusters, *Cluster, []*Backend) {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = seeded()
	}
	cs := NewClusters(cfg)
	c, err := cs.AddCluster("c", p)
	require.NoError(t, err)
	bs := make([]*Backend, len(specs))
	for i, s := range specs {
		b, err := cs.AddBackend("c", Backend{ID: s.id, Address: addr(i + 1), Weight: s.weight, Backup: s.backup})
		require.NoError(t, err)
		bs[i] = b
	}
	return cs, c, bs
}

// ids returns the IDs of n successive picks, without reporting connects.
func ids(t testing.TB, c *Cluster, now time.Time, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		b, err := c.Pick(now, nil)
		require.NoError(t, err)
		out[i] = b.ID
	}
	return out
}

// countPicks picks n times and counts picks per backend ID.
func countPicks(t testing.TB, c *Cluster, now time.Time, n int) map[string]int {
	t.Helper()
	m := make(map[string]int)
	for range n {
		b, err := c.Pick(now, nil)
		require.NoError(t, err)
		m[b.ID]++
	}
	return m
}

// takeDown fails b's connects until it goes Down (the default MaxFailures).
func takeDown(t testing.TB, b *Backend, now time.Time) {
	t.Helper()
	for range DefaultMaxFailures {
		b.ConnectStarted()
		b.ConnectFailed(now)
	}
	require.Equal(t, Down, b.Status())
}

func TestParsePolicyRoundTrip(t *testing.T) {
	for _, p := range allPolicies {
		got, err := ParsePolicy(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, got)

		got, err = ParsePolicy(string([]byte{p.String()[0] - 'a' + 'A'}) + p.String()[1:])
		require.NoError(t, err, "case-insensitive")
		assert.Equal(t, p, got)

		text, err := p.(Builtin).MarshalText()
		require.NoError(t, err)
		var q Builtin
		require.NoError(t, q.UnmarshalText(text))
		assert.Equal(t, p, Policy(q))
	}
	assert.Equal(t, "roundrobin", RoundRobin.String())
	assert.Equal(t, "random", Random.String())
	assert.Equal(t, "leastconn", LeastConnections.String())
	assert.Equal(t, "p2c", PowerOfTwo.String())

	p, err := ParsePolicy("LEASTCONN")
	require.NoError(t, err)
	assert.Equal(t, LeastConnections, p)
	p, err = ParsePolicy("")
	require.NoError(t, err)
	assert.Equal(t, RoundRobin, p, "empty means the default")

	_, err = ParsePolicy("fastest")
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, "Policy(9)", Builtin(9).String())
	_, err = Builtin(9).MarshalText()
	require.ErrorIs(t, err, ErrInvalid)

	assert.Equal(t, "up", Up.String())
	assert.Equal(t, "down", Down.String())
	assert.Equal(t, "removed", Removed.String())
	assert.Equal(t, "Status(7)", Status(7).String())
}

func TestSmoothRoundRobinSequence(t *testing.T) {
	_, c, _ := newCluster(t, Config{}, RoundRobin, spec{"a", 5, false}, spec{"b", 1, false}, spec{"c", 1, false})
	want := []string{"a", "a", "b", "a", "c", "a", "a"}
	assert.Equal(t, want, ids(t, c, t0, 7))
	assert.Equal(t, want, ids(t, c, t0, 7), "the pattern repeats every total-weight picks")
}

func TestRoundRobinEqualWeights(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	assert.Equal(t, DefaultWeight, bs[0].Weight, "weight 0 means the default")
	assert.Equal(t, []string{"a", "b", "c", "a", "b", "c"}, ids(t, c, t0, 6))
}

func TestRandomIsProportionalToWeight(t *testing.T) {
	_, c, _ := newCluster(t, Config{}, Random, spec{"a", 5, false}, spec{"b", 1, false}, spec{"c", 1, false})
	const n = 70_000
	m := countPicks(t, c, t0, n)
	// Expected 50k, 10k, 10k; the standard deviation is about 120 and 92.
	assert.InDelta(t, 50_000, m["a"], 700)
	assert.InDelta(t, 10_000, m["b"], 500)
	assert.InDelta(t, 10_000, m["c"], 500)
}

func TestLeastConnectionsPrefersIdleAndRotatesTies(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, LeastConnections, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	bs[0].ConnectStarted()
	bs[0].ConnectStarted()
	assert.Equal(t, []string{"b", "c", "b", "c", "b"}, ids(t, c, t0, 5), "idle ones only, in turn")

	// With every pick counted, load spreads evenly: after a's two, b and c
	// catch up, then all three rotate.
	var got []string
	for range 7 {
		b, err := c.Pick(t0, nil)
		require.NoError(t, err)
		b.ConnectStarted()
		got = append(got, b.ID)
	}
	assert.ElementsMatch(t, []string{"b", "b", "c", "c", "a", "b", "c"}, got)
	for _, b := range bs {
		assert.Equal(t, 3, b.Active())
	}
	rot := ids(t, c, t0, 6)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, rot[:3], "equal load rotates through all")
	assert.Equal(t, rot[:3], rot[3:], "in a stable order")
}

func TestLeastConnectionsHonoursWeight(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, LeastConnections, spec{"a", 300, false}, spec{"b", 100, false})
	for range 400 {
		b, err := c.Pick(t0, nil)
		require.NoError(t, err)
		b.ConnectStarted()
	}
	assert.Equal(t, 300, bs[0].Active())
	assert.Equal(t, 100, bs[1].Active())
}

func TestPowerOfTwoAvoidsTheMostLoaded(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, PowerOfTwo, spec{id: "busy"}, spec{id: "idle"}, spec{id: "light"})
	for range 100 {
		bs[0].ConnectStarted()
	}
	bs[1].ConnectStarted()
	bs[2].ConnectStarted()
	bs[2].ConnectStarted()
	const n = 30_000
	m := countPicks(t, c, t0, n)
	assert.Zero(t, m["busy"], "the most loaded loses every pair it is drawn in")
	// Pairs {busy,idle} and {idle,light} go to idle, {busy,light} to light.
	assert.InDelta(t, n*2/3, m["idle"], 600)
	assert.InDelta(t, n/3, m["light"], 600)
}

func TestPowerOfTwoSpreadsLoad(t *testing.T) {
	specs := make([]spec, 10)
	for i := range specs {
		specs[i] = spec{id: string(rune('a' + i))}
	}
	_, c, bs := newCluster(t, Config{}, PowerOfTwo, specs...)
	for range 1000 {
		b, err := c.Pick(t0, nil)
		require.NoError(t, err)
		b.ConnectStarted()
	}
	for _, b := range bs {
		assert.InDelta(t, 100, b.Active(), 5, "backend %s", b.ID)
	}
}

func TestSingleCandidateForEveryPolicy(t *testing.T) {
	for _, p := range allPolicies {
		_, c, bs := newCluster(t, Config{}, p, spec{id: "only"})
		for range 5 {
			b, err := c.Pick(t0, nil)
			require.NoError(t, err, p)
			assert.Same(t, bs[0], b, p)
		}
	}
}

func TestBackupsOnlyWhenNoPrimaryIsAvailable(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, p, spec{id: "p1"}, spec{id: "bk", backup: true}, spec{id: "p2"})
			m := countPicks(t, c, t0, 1000)
			assert.Zero(t, m["bk"], "primaries up: no backup")

			takeDown(t, bs[0], t0)
			m = countPicks(t, c, t0, 100)
			assert.Equal(t, map[string]int{"p2": 100}, m, "one primary left")

			takeDown(t, bs[2], t0)
			m = countPicks(t, c, t0, 100)
			assert.Equal(t, map[string]int{"bk": 100}, m, "no primary available: backup")

			// A primary whose back-off expired is available again (for its
			// trial) and is preferred to the backup.
			first := bs[0]
			if bs[2].RetryAt().Before(first.RetryAt()) {
				first = bs[2]
			}
			b, err := c.Pick(first.RetryAt(), nil)
			require.NoError(t, err)
			assert.Same(t, first, b)
		})
	}
}

func TestTriedBackendsAreExcluded(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, p, spec{id: "a"}, spec{id: "b"}, spec{id: "c"}, spec{id: "bk", backup: true})
			var tried []*Backend
			for range 3 {
				b, err := c.Pick(t0, tried)
				require.NoError(t, err)
				assert.NotContains(t, tried, b)
				assert.False(t, b.Backup, "primaries first")
				tried = append(tried, b)
			}
			b, err := c.Pick(t0, tried)
			require.NoError(t, err)
			assert.Same(t, bs[3], b, "all primaries tried: the backup")
			tried = append(tried, b)
			_, err = c.Pick(t0, tried)
			require.ErrorIs(t, err, ErrNoBackend, "everything tried")
		})
	}
}

func TestNoBackendWhenEmpty(t *testing.T) {
	for _, p := range allPolicies {
		_, c, _ := newCluster(t, Config{}, p)
		_, err := c.Pick(t0, nil)
		require.ErrorIs(t, err, ErrNoBackend)
		_, err = c.PickSticky(t0, "x", nil)
		require.ErrorIs(t, err, ErrNoBackend)
	}
}

func TestFailOpenWhenEverythingIsInBackoff(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			_, c, bs := newCluster(t, Config{}, p, spec{id: "a"}, spec{id: "b"}, spec{id: "bk", backup: true})
			for _, b := range bs {
				takeDown(t, b, t0)
			}
			now := t0.Add(100 * time.Millisecond) // Well inside every back-off.
			var tried []*Backend
			for range 2 {
				b, err := c.Pick(now, tried)
				require.NoError(t, err, "better try than 503")
				assert.False(t, b.Backup, "fail open on primaries first")
				assert.Equal(t, Down, b.Status())
				tried = append(tried, b)
			}
			b, err := c.Pick(now, tried)
			require.NoError(t, err)
			assert.Same(t, bs[2], b, "then on backups")
			_, err = c.Pick(now, append(tried, b))
			require.ErrorIs(t, err, ErrNoBackend)
		})
	}
}

func TestFailOpenSpreadsByPolicy(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"})
	takeDown(t, bs[0], t0)
	takeDown(t, bs[1], t0)
	assert.Equal(t, []string{"a", "b", "a", "b"}, ids(t, c, t0, 4))
}

func TestBackoffSchedule(t *testing.T) {
	_, _, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	b := bs[0]

	// Two failures are not enough.
	for range 2 {
		b.ConnectStarted()
		b.ConnectFailed(t0)
	}
	require.Equal(t, Up, b.Status())
	require.True(t, b.Available(t0))

	b.ConnectStarted()
	b.ConnectFailed(t0)
	require.Equal(t, Down, b.Status())

	now := t0
	nominal := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, sec := range nominal {
		want := sec * time.Second
		delay := b.RetryAt().Sub(now)
		assert.GreaterOrEqual(t, delay, want-want/10, "step %d", i)
		assert.LessOrEqual(t, delay, want+want/10, "step %d", i)

		assert.False(t, b.Available(b.RetryAt().Add(-time.Nanosecond)), "no traffic during back-off")
		now = b.RetryAt()
		require.True(t, b.Available(now), "one trial once the back-off expires")
		b.ConnectStarted()
		assert.False(t, b.Available(now), "a single trial at a time")
		b.ConnectFailed(now)
		assert.Equal(t, Down, b.Status())
	}
	assert.Zero(t, b.Active())
}

func TestBackoffJitterVaries(t *testing.T) {
	specs := make([]spec, 50)
	for i := range specs {
		specs[i] = spec{id: string(rune('A' + i))}
	}
	_, _, bs := newCluster(t, Config{}, RoundRobin, specs...)
	seen := make(map[time.Duration]bool)
	for _, b := range bs {
		takeDown(t, b, t0)
		d := b.RetryAt().Sub(t0)
		assert.InDelta(t, float64(time.Second), float64(d), float64(time.Second/10))
		seen[d] = true
	}
	assert.Greater(t, len(seen), 40, "workers and backends must not retry in lockstep")
}

func TestBackoffCustomConfig(t *testing.T) {
	cfg := Config{MaxFailures: 1, BackoffBase: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond}
	_, _, bs := newCluster(t, cfg, RoundRobin, spec{id: "a"})
	b := bs[0]
	b.ConnectStarted()
	b.ConnectFailed(t0)
	require.Equal(t, Down, b.Status(), "one failure is enough")
	now := t0
	for _, want := range []time.Duration{100, 200, 300, 300} {
		want *= time.Millisecond
		assert.InDelta(t, float64(want), float64(b.RetryAt().Sub(now)), float64(want/10))
		now = b.RetryAt()
		b.ConnectStarted()
		b.ConnectFailed(now)
	}
}

func TestFailOpenFailuresDoNotGrowTheBackoff(t *testing.T) {
	_, _, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	b := bs[0]
	takeDown(t, b, t0)
	retry := b.RetryAt()
	for range 10 {
		b.ConnectStarted()
		b.ConnectFailed(t0.Add(time.Millisecond))
	}
	assert.Equal(t, retry, b.RetryAt(), "failures before expiry are not trials")
	assert.True(t, b.Available(retry))
}

func TestTrialSuccessRecovers(t *testing.T) {
	var events []bool
	cfg := Config{OnStateChange: func(cluster string, b *Backend, up bool) {
		assert.Equal(t, "c", cluster)
		assert.Equal(t, "a", b.ID)
		events = append(events, up)
	}}
	_, c, bs := newCluster(t, cfg, RoundRobin, spec{id: "a"}, spec{id: "b"})
	a := bs[0]
	takeDown(t, a, t0)

	m := countPicks(t, c, t0.Add(500*time.Millisecond), 50)
	assert.Equal(t, map[string]int{"b": 50}, m, "no traffic during back-off")

	now := a.RetryAt()
	var trial *Backend
	for range 2 {
		b, err := c.Pick(now, nil)
		require.NoError(t, err)
		if b == a {
			trial = b
			break
		}
	}
	require.Same(t, a, trial, "the expired back-off lets a trial through")
	trial.ConnectStarted()
	m = countPicks(t, c, now, 20)
	assert.Equal(t, map[string]int{"b": 20}, m, "nothing else while the trial runs")

	trial.ConnectSucceeded(now, time.Millisecond)
	assert.Equal(t, Up, a.Status())
	assert.True(t, a.RetryAt().IsZero())
	m = countPicks(t, c, now, 20)
	assert.Equal(t, map[string]int{"a": 10, "b": 10}, m)
	trial.Released()
	assert.Zero(t, a.Active())
	assert.Equal(t, []bool{false, true}, events)

	// A later outage starts over from the base back-off.
	takeDown(t, a, now)
	d := a.RetryAt().Sub(now)
	assert.InDelta(t, float64(time.Second), float64(d), float64(time.Second/10))
}

func TestAbandonedTrialAllowsAnother(t *testing.T) {
	_, _, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	a := bs[0]
	takeDown(t, a, t0)
	now := a.RetryAt()
	a.ConnectStarted()
	require.False(t, a.Available(now))
	a.Released() // The client went away before the connect completed.
	assert.True(t, a.Available(now))
	assert.Zero(t, a.Active())
}

func TestOnStateChangeOncePerTransition(t *testing.T) {
	type event struct {
		id string
		up bool
	}
	var events []event
	cfg := Config{OnStateChange: func(_ string, b *Backend, up bool) { events = append(events, event{b.ID, up}) }}
	_, _, bs := newCluster(t, cfg, RoundRobin, spec{id: "a"}, spec{id: "b"})
	a := bs[0]

	// Interleaved successes reset the consecutive count.
	for range 5 {
		a.ConnectStarted()
		a.ConnectFailed(t0)
		a.ConnectStarted()
		a.ConnectFailed(t0)
		a.ConnectStarted()
		a.ConnectSucceeded(t0, time.Millisecond)
		a.Released()
	}
	assert.Empty(t, events)
	assert.Equal(t, Up, a.Status())

	now := t0
	for range 10 { // Three to go down, then failed trials and fail-open connects.
		a.ConnectStarted()
		a.ConnectFailed(now)
		now = now.Add(2 * time.Minute)
	}
	assert.Equal(t, []event{{"a", false}}, events)
	for range 3 {
		a.ConnectStarted()
		a.ConnectSucceeded(now, time.Millisecond)
		a.Released()
	}
	assert.Equal(t, []event{{"a", false}, {"a", true}}, events)
}

func TestCounters(t *testing.T) {
	_, _, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	a := bs[0]
	a.ConnectStarted()
	a.ConnectSucceeded(t0, time.Millisecond)
	assert.Equal(t, 1, a.Active())
	a.Released()
	takeDown(t, a, t0)
	now := a.RetryAt()
	a.ConnectStarted()
	a.ConnectSucceeded(now, time.Millisecond)
	a.Released()
	assert.Equal(t, Counters{Connections: 5, Failures: 3, Downs: 1, Ups: 1}, counts(a.Counters()))
	assert.Zero(t, a.Active())
	a.Released()
	assert.Zero(t, a.Active(), "an extra Released never goes negative")
}

func TestAddRemoveUnderUse(t *testing.T) {
	var events int
	cfg := Config{OnStateChange: func(string, *Backend, bool) { events++ }}
	cs, c, bs := newCluster(t, cfg, LeastConnections, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	a, b := bs[0], bs[1]
	a.ConnectStarted()
	a.ConnectSucceeded(t0, time.Millisecond)
	b.ConnectStarted() // A connect in flight.

	require.NoError(t, cs.RemoveBackend("c", "a"))
	require.NoError(t, cs.RemoveBackend("c", "b"))
	assert.Equal(t, Removed, a.Status())
	assert.False(t, a.Available(t0))
	assert.Nil(t, c.Backend("a"))
	assert.Equal(t, []*Backend{bs[2]}, c.Backends())

	for _, p := range allPolicies {
		_, err := cs.AddCluster("c", p)
		require.NoError(t, err)
		m := countPicks(t, c, t0, 50)
		assert.Equal(t, map[string]int{"c": 50}, m, "removed backends are never picked (%s)", p)
	}

	// Sessions finish on the removed backends safely, without hooks.
	a.Released()
	for range 5 {
		b.ConnectFailed(t0)
	}
	assert.Zero(t, a.Active())
	assert.Zero(t, b.Active())
	assert.Equal(t, Removed, b.Status())
	assert.Zero(t, events)

	// Adding keeps existing pointers and re-adding an ID gives a new one.
	for i := range 20 {
		_, err := cs.AddBackend("c", Backend{ID: string(rune('d' + i)), Address: addr(100 + i)})
		require.NoError(t, err)
	}
	a2, err := cs.AddBackend("c", Backend{ID: "a", Address: addr(1)})
	require.NoError(t, err)
	assert.NotSame(t, a, a2)
	assert.Same(t, a2, c.Backend("a"))
	assert.Same(t, bs[2], c.Backend("c"))
	assert.Equal(t, Up, a2.Status())
	assert.Equal(t, Removed, a.Status())
	assert.Equal(t, 22, c.Len())

	// Removing the cluster removes every backend.
	require.NoError(t, cs.RemoveCluster("c"))
	assert.Nil(t, cs.Cluster("c"))
	assert.Zero(t, cs.Len())
	assert.Equal(t, Removed, a2.Status())
	_, err = c.Pick(t0, nil)
	require.ErrorIs(t, err, ErrNoBackend)
	a2.Released()
}

func TestRegistryErrors(t *testing.T) {
	cs := NewClusters(Config{})
	_, err := cs.AddCluster("", RoundRobin)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = cs.AddCluster("x", Builtin(42))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = cs.AddCluster("x", nil)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Zero(t, cs.Len(), "a refused policy creates no cluster")
	_, err = cs.AddBackend("nope", Backend{ID: "a", Address: addr(1)})
	require.ErrorIs(t, err, ErrUnknownCluster)
	require.ErrorIs(t, cs.RemoveCluster("nope"), ErrUnknownCluster)
	require.ErrorIs(t, cs.RemoveBackend("nope", "a"), ErrUnknownCluster)

	_, err = cs.AddCluster("c", RoundRobin)
	require.NoError(t, err)
	require.ErrorIs(t, cs.RemoveBackend("c", "a"), ErrUnknownBackend)

	bad := []Backend{
		{ID: "", Address: addr(1)},
		{ID: "a"},
		{ID: "a", Address: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 0)},
		{ID: "a", Address: addr(1), Weight: -1},
		{ID: "a", Address: addr(1), Weight: MaxWeight + 1},
	}
	for _, b := range bad {
		_, err = cs.AddBackend("c", b)
		require.ErrorIs(t, err, ErrInvalid, "%+v", b)
	}

	_, err = cs.AddBackend("c", Backend{ID: "a", Address: addr(1), StickyID: "s1"})
	require.NoError(t, err)
	_, err = cs.AddBackend("c", Backend{ID: "a", Address: addr(2)})
	require.ErrorIs(t, err, ErrDuplicate, "same ID")
	_, err = cs.AddBackend("c", Backend{ID: "b", Address: addr(2), StickyID: "s1"})
	require.ErrorIs(t, err, ErrDuplicate, "same sticky ID")
	_, err = cs.AddBackend("c", Backend{ID: "s1", Address: addr(2)})
	require.ErrorIs(t, err, ErrDuplicate, "default sticky ID collides")
	assert.Equal(t, 1, cs.Cluster("c").Len(), "failed adds leave nothing behind")
}

func TestAddClusterIsIdempotent(t *testing.T) {
	cs, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	again, err := cs.AddCluster("c", LeastConnections)
	require.NoError(t, err)
	assert.Same(t, c, again)
	assert.Equal(t, LeastConnections, c.Policy(), "the policy is updated")
	assert.Same(t, bs[0], c.Backend("a"), "backends are kept")
	assert.Equal(t, 1, cs.Len())
	_, err = cs.AddCluster("d", Random)
	require.NoError(t, err)
	assert.Equal(t, 2, cs.Len())
}

func TestPickSticky(t *testing.T) {
	cs, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	named, err := cs.AddBackend("c", Backend{ID: "d", Address: addr(9), StickyID: "cookie-d", Backup: true})
	require.NoError(t, err)
	assert.Equal(t, "b", bs[1].StickyID, "an empty sticky ID means the ID")

	for range 10 {
		b, err := c.PickSticky(t0, "b", nil)
		require.NoError(t, err)
		assert.Same(t, bs[1], b)
	}
	b, err := c.PickSticky(t0, "cookie-d", nil)
	require.NoError(t, err)
	assert.Same(t, named, b, "sticky wins even for a backup")
	b, err = c.PickSticky(t0, "d", nil)
	require.NoError(t, err)
	assert.False(t, b.Backup, "IDs are not sticky IDs: falls back to Pick")

	b, err = c.PickSticky(t0, "b", []*Backend{bs[1]})
	require.NoError(t, err)
	assert.NotSame(t, bs[1], b, "a tried sticky backend falls back to Pick")
	assert.NotContains(t, []*Backend{bs[1]}, b)

	takeDown(t, bs[1], t0)
	for range 10 {
		b, err := c.PickSticky(t0, "b", nil)
		require.NoError(t, err)
		assert.NotSame(t, bs[1], b, "a down sticky backend falls back to Pick")
	}
	b, err = c.PickSticky(bs[1].RetryAt(), "b", nil)
	require.NoError(t, err)
	assert.Same(t, bs[1], b, "its trial goes to the sticky client")

	b, err = c.PickSticky(t0, "", nil)
	require.NoError(t, err)
	assert.NotNil(t, b)
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			specs := make([]spec, 10)
			for i := range specs {
				specs[i] = spec{id: string(rune('a' + i)), weight: 10 * (i + 1), backup: i == 9}
			}
			_, c, bs := newCluster(t, Config{}, p, specs...)
			takeDown(t, bs[0], t0)
			tried := []*Backend{bs[1], bs[2]}
			now := t0
			allocs := testing.AllocsPerRun(1000, func() {
				now = now.Add(time.Millisecond)
				b, err := c.Pick(now, tried)
				if err != nil {
					panic(err)
				}
				b.ConnectStarted()
				b.ConnectSucceeded(now, time.Millisecond)
				b.Released()
				b, err = c.PickSticky(now, "e", tried)
				if err != nil {
					panic(err)
				}
				b.ConnectStarted()
				b.ConnectFailed(now)
				bs[0].ConnectStarted() // Trials and back-off of a down backend.
				bs[0].ConnectFailed(now)
			})
			assert.Zero(t, allocs)
		})
	}
}

func TestHealthCheckVerdictExcludesEvenWhenFailingOpen(t *testing.T) {
	cs := NewClusters(Config{})
	c, err := cs.AddCluster("c", RoundRobin)
	require.NoError(t, err)
	a, err := cs.AddBackend("c", Backend{ID: "a", Address: netip.MustParseAddrPort("127.0.0.1:1")})
	require.NoError(t, err)
	b, err := cs.AddBackend("c", Backend{ID: "b", Address: netip.MustParseAddrPort("127.0.0.1:2")})
	require.NoError(t, err)
	now := time.Unix(1000, 0)
	require.True(t, a.SetHealthy(false))
	require.False(t, a.SetHealthy(false), "no change")
	assert.False(t, a.Healthy())
	for i := 0; i < 10; i++ {
		got, err := c.Pick(now, nil)
		require.NoError(t, err)
		assert.Same(t, b, got)
	}
	// Every backend sick: no fail-open, the cluster has nothing to offer.
	b.SetHealthy(false)
	_, err = c.Pick(now, nil)
	assert.ErrorIs(t, err, ErrNoBackend)
	_, err = c.PickSticky(now, "a", nil)
	assert.ErrorIs(t, err, ErrNoBackend)
	a.SetHealthy(true)
	got, err := c.Pick(now, nil)
	require.NoError(t, err)
	assert.Same(t, a, got)
}

func TestRoundRobinOffsetRotatesTheStart(t *testing.T) {
	for off, want := range [][]string{{"a", "b", "c", "a", "b", "c"}, {"b", "c", "a", "b", "c", "a"}, {"c", "a", "b", "c", "a", "b"}} {
		cs := NewClusters(Config{RoundRobinOffset: off})
		c, err := cs.AddCluster("c", RoundRobin)
		require.NoError(t, err)
		for i, id := range []string{"a", "b", "c"} {
			_, err := cs.AddBackend("c", Backend{ID: id, Address: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i))})
			require.NoError(t, err)
		}
		var got []string
		for range want {
			b, err := c.Pick(time.Unix(1, 0), nil)
			require.NoError(t, err)
			got = append(got, b.ID)
		}
		assert.Equal(t, want, got, "offset %d", off)
	}
}
