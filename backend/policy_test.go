package backend

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/metrics"
)

// lightest is a user-written policy: always the lowest-weight candidate,
// the earliest on a tie. resets counts the Reset calls of its pickers.
type lightest struct{ resets *int }

func (p lightest) NewPicker() Picker { return &lightestPicker{resets: p.resets} }
func (lightest) String() string      { return "lightest" }

type lightestPicker struct {
	resets *int
	set    int // backends in the cluster, as last heard.
}

func (p *lightestPicker) Reset(bs []*Backend) {
	p.set = len(bs)
	if p.resets != nil {
		*p.resets++
	}
}

func (p *lightestPicker) Pick(cs *Candidates) *Backend {
	best := cs.At(0)
	for i := 1; i < cs.Len(); i++ {
		if b := cs.At(i); b.Weight < best.Weight {
			best = b
		}
	}
	return best
}

func TestUserPolicy(t *testing.T) {
	var resets int
	p := lightest{resets: &resets}
	cs, c, bs := newCluster(t, Config{}, p, spec{"a", 30, false}, spec{"b", 10, false}, spec{"c", 20, false}, spec{"bk", 1, true})
	assert.Equal(t, 5, resets, "once when installed, then once per backend added")
	assert.Equal(t, "lightest", c.Policy().String())
	assert.Equal(t, 4, c.picker.(*lightestPicker).set)

	assert.Equal(t, []string{"b", "b", "b"}, ids(t, c, t0, 3), "the backup is not a candidate")
	b, err := c.Pick(t0, []*Backend{bs[1]})
	require.NoError(t, err)
	assert.Same(t, bs[2], b, "tried ones are not candidates")
	takeDown(t, bs[1], t0)
	assert.Equal(t, []string{"c", "c"}, ids(t, c, t0, 2))

	again, err := cs.AddCluster("c", p)
	require.NoError(t, err)
	assert.Same(t, c, again)
	assert.Equal(t, 5, resets, "replaying the same policy keeps its picker")

	require.NoError(t, cs.RemoveBackend("c", "c"))
	assert.Equal(t, 6, resets)
	assert.Equal(t, 3, c.picker.(*lightestPicker).set)
	assert.Equal(t, []string{"a", "a"}, ids(t, c, t0, 2))
}

// rogue is a broken user policy whose picker returns whatever next says.
type rogue struct{ next **Backend }

func (p rogue) NewPicker() Picker { return rogueP(p) }
func (rogue) String() string      { return "rogue" }

type rogueP rogue

func (rogueP) Reset([]*Backend)                       {}
func (p rogueP) Pick(*Candidates) *Backend            { return *p.next }
func (p rogueP) PickKey(*Candidates, uint64) *Backend { return *p.next }

func TestPickerReturningANonCandidateFallsBack(t *testing.T) {
	var next *Backend
	cs, c, bs := newCluster(t, Config{}, rogue{&next}, spec{id: "a"}, spec{id: "b"}, spec{id: "bk", backup: true})
	_, _, others := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	gone, err := cs.AddBackend("c", Backend{ID: "gone", Address: addr(50)})
	require.NoError(t, err)
	require.NoError(t, cs.RemoveBackend("c", "gone"))
	sick, err := cs.AddBackend("c", Backend{ID: "sick", Address: addr(51)})
	require.NoError(t, err)
	sick.SetHealthy(false)

	tried := []*Backend{bs[0]}
	cases := []struct {
		name string
		b    *Backend
	}{
		{"nil", nil},
		{"tried", bs[0]},
		{"backup while a primary is up", bs[2]},
		{"another cluster's backend", others[0]},
		{"removed", gone},
		{"sick", sick},
		{"never added", &Backend{ID: "x", Address: addr(60)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next = tc.b
			for range 10 {
				b, err := c.Pick(t0, tried)
				require.NoError(t, err)
				assert.Same(t, bs[1], b, "the only candidate")
				b, err = c.PickKey(t0, 42, tried)
				require.NoError(t, err)
				assert.Same(t, bs[1], b)
			}
		})
	}
	next = bs[1]
	b, err := c.Pick(t0, tried)
	require.NoError(t, err)
	assert.Same(t, bs[1], b, "a valid answer is kept")
}

func TestFaultyPickerFallbackSpreadsByWeight(t *testing.T) {
	var next *Backend
	_, c, _ := newCluster(t, Config{}, rogue{&next}, spec{"a", 3, false}, spec{"b", 1, false})
	m := countPicks(t, c, t0, 4000)
	assert.InDelta(t, 3000, m["a"], 150)
	assert.InDelta(t, 1000, m["b"], 150)
}

// uncomparable is a policy that == would panic on.
type uncomparable struct{ names []string }

func (uncomparable) NewPicker() Picker { return randomPicker{} }
func (uncomparable) String() string    { return "uncomparable" }

// nilPicker is a policy that fails to make a picker.
type nilPicker struct{}

func (nilPicker) NewPicker() Picker { return nil }
func (nilPicker) String() string    { return "nil" }

func TestAddClusterPolicyChanges(t *testing.T) {
	cs, c, _ := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"})
	for range 3 {
		again, err := cs.AddCluster("c", uncomparable{[]string{"x"}})
		require.NoError(t, err, "an uncomparable policy is installed, not compared")
		assert.Same(t, c, again)
	}
	_, err := cs.AddCluster("c", nilPicker{})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, uncomparable{[]string{"x"}}, c.Policy(), "a refused policy changes nothing")
	_, err = cs.AddCluster("c", nil)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = cs.AddCluster("new", nilPicker{})
	require.ErrorIs(t, err, ErrInvalid)
	assert.Nil(t, cs.Cluster("new"))
	assert.Equal(t, 2, c.Len())
}

func TestCandidatesView(t *testing.T) {
	var seen []string
	var total int64
	probe := funcPolicy(func(cs *Candidates) *Backend {
		seen = seen[:0]
		for i := range cs.Len() {
			seen = append(seen, cs.At(i).ID)
		}
		total = cs.TotalWeight()
		assert.Equal(t, t0, cs.Now())
		assert.NotNil(t, cs.Rand())
		return cs.At(0)
	})
	_, c, bs := newCluster(t, Config{RoundRobinOffset: -2}, probe,
		spec{"a", 1, false}, spec{"b", 2, false}, spec{"c", 4, false}, spec{"bk", 8, true})
	_, err := c.Pick(t0, []*Backend{bs[1]})
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "a"}, seen, "rotated by the offset (-2 of 4 starts at the third), tried and backups left out")
	assert.Equal(t, int64(5), total)

	takeDown(t, bs[0], t0)
	takeDown(t, bs[2], t0)
	_, err = c.Pick(t0, []*Backend{bs[1]})
	require.NoError(t, err)
	assert.Equal(t, []string{"bk"}, seen, "no primary available: the backups")
	assert.Equal(t, int64(8), total)

	takeDown(t, bs[3], t0)
	_, err = c.Pick(t0, []*Backend{bs[1]})
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "a"}, seen, "failing open: primaries first")
}

// funcPolicy turns a function into a stateless Policy, for tests.
type funcPolicy func(cs *Candidates) *Backend

func (f funcPolicy) NewPicker() Picker { return funcPicker{f} }
func (funcPolicy) String() string      { return "func" }

type funcPicker struct{ f funcPolicy }

func (funcPicker) Reset([]*Backend)               {}
func (p funcPicker) Pick(cs *Candidates) *Backend { return p.f(cs) }

func TestCandidatesContains(t *testing.T) {
	var check func(cs *Candidates)
	probe := funcPolicy(func(cs *Candidates) *Backend { check(cs); return cs.At(0) })
	_, c, bs := newCluster(t, Config{}, probe, spec{id: "a"}, spec{id: "b"}, spec{id: "bk", backup: true})
	check = func(cands *Candidates) {
		assert.False(t, cands.Contains(nil))
		assert.False(t, cands.Contains(bs[0]), "tried")
		assert.True(t, cands.Contains(bs[1]))
		assert.False(t, cands.Contains(bs[2]), "a backup while a primary is available")
	}
	_, err := c.Pick(t0, bs[:1])
	require.NoError(t, err)

	now := t0.Add(time.Millisecond)
	takeDown(t, bs[1], now)
	check = func(cands *Candidates) {
		assert.False(t, cands.Contains(bs[1]), "in back-off")
		assert.True(t, cands.Contains(bs[2]))
	}
	_, err = c.Pick(now, bs[:1])
	require.NoError(t, err)
}

func TestGeneration(t *testing.T) {
	cs, c, _ := newCluster(t, Config{}, RoundRobin)
	g := c.Generation()
	assert.Equal(t, uint64(1), g, "a new cluster starts at 1")
	step := func(what string, changed bool) {
		t.Helper()
		if changed {
			assert.Greater(t, c.Generation(), g, what)
		} else {
			assert.Equal(t, g, c.Generation(), what)
		}
		g = c.Generation()
	}
	a, err := cs.AddBackend("c", Backend{ID: "a", Address: addr(1)})
	require.NoError(t, err)
	step("add", true)
	b, err := cs.AddBackend("c", Backend{ID: "b", Address: addr(2)})
	require.NoError(t, err)
	step("add", true)
	_, err = cs.AddBackend("c", Backend{ID: "b", Address: addr(3)})
	require.ErrorIs(t, err, ErrDuplicate)
	step("refused add", false)

	a.SetHealthy(false)
	step("health check fails", true)
	a.SetHealthy(false)
	step("same verdict", false)
	a.SetHealthy(true)
	step("health check passes", true)

	takeDown(t, a, t0)
	a.ConnectStarted()
	a.ConnectSucceeded(a.RetryAt(), time.Millisecond)
	a.Released()
	step("down and up through connects", false)
	_, err = c.Pick(t0, nil)
	require.NoError(t, err)
	step("pick", false)

	_, err = cs.AddCluster("c", RoundRobin)
	require.NoError(t, err)
	step("same policy replayed", false)
	_, err = cs.AddCluster("c", LeastConnections)
	require.NoError(t, err)
	step("policy", true)
	_, err = cs.AddCluster("c", nil)
	require.Error(t, err)
	step("refused policy", false)

	require.NoError(t, cs.RemoveBackend("c", "a"))
	step("remove", true)
	a.SetHealthy(false)
	step("verdict on a removed backend", false)
	require.NoError(t, cs.RemoveCluster("c"))
	step("remove cluster", true)
	b.SetHealthy(false)
	step("verdict on a backend of a removed cluster", false)
}

func TestClusterCountersKeepRemovedBackends(t *testing.T) {
	cs, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"})
	a, b := bs[0], bs[1]
	a.ConnectStarted()
	a.ConnectSucceeded(t0, time.Millisecond)
	a.CountRequest()
	a.CountRequest()
	a.CountBytes(1000, 200)
	b.ConnectStarted()
	b.ConnectFailed(t0)
	b.ConnectStarted()
	b.ConnectSucceeded(t0, time.Millisecond)
	b.CountRequest()
	b.CountBytes(10, 20)
	b.CountBytes(5, 0)

	assert.Equal(t, Counters{Connections: 1, Requests: 2, BytesIn: 1000, BytesOut: 200}, counts(a.Counters()))
	assert.Equal(t, Counters{Connections: 2, Failures: 1, Requests: 1, BytesIn: 15, BytesOut: 20}, counts(b.Counters()))
	both := Counters{Connections: 3, Failures: 1, Requests: 3, BytesIn: 1015, BytesOut: 220}
	assert.Equal(t, both, counts(c.Counters()))

	require.NoError(t, cs.RemoveBackend("c", "a"))
	assert.Equal(t, both, counts(c.Counters()), "a removed backend's totals stay with the cluster")

	// The session on a finishes after the removal: a's own counters see
	// it, the cluster's keep a's totals at removal.
	a.CountRequest()
	a.CountBytes(1, 1)
	a.Released()
	assert.Equal(t, Counters{Connections: 1, Requests: 3, BytesIn: 1001, BytesOut: 201}, counts(a.Counters()))
	assert.Equal(t, both, counts(c.Counters()))

	// Re-adding the ID is a new backend with its own counters.
	a2, err := cs.AddBackend("c", Backend{ID: "a", Address: addr(1)})
	require.NoError(t, err)
	a2.ConnectStarted()
	a2.CountRequest()
	want := both
	want.Connections++
	want.Requests++
	assert.Equal(t, want, counts(c.Counters()))

	h := c.Counters().Connect
	assert.Equal(t, uint64(2), h.Count(), "the successful connects, timed")
	assert.Equal(t, 2*time.Millisecond, h.Sum)

	require.NoError(t, cs.RemoveCluster("c"))
	assert.Equal(t, want, counts(c.Counters()), "a removed cluster keeps its totals for whoever still holds it")
}

// counts is c without its histograms.
func counts(c Counters) Counters {
	c.Connect, c.FirstByte, c.Duration = metrics.HistogramValue{}, metrics.HistogramValue{}, metrics.HistogramValue{}
	return c
}

// A backend's responses count at the backend and its cluster; the
// proxy's own answers at the cluster only.
func TestServedAndAnswered(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"})
	a := bs[0]
	a.Served(200, time.Millisecond, 3*time.Millisecond)
	a.Served(404, time.Millisecond, 2*time.Millisecond)
	a.Served(0, 0, time.Second) // a protocol without statuses: timed, not classed
	c.Answered(503, 10*time.Millisecond)
	assert.Equal(t, [5]uint64{0, 1, 0, 1, 0}, a.Counters().Responses)
	assert.Equal(t, [5]uint64{0, 1, 0, 1, 1}, c.Counters().Responses)
	assert.Equal(t, uint64(3), a.Counters().FirstByte.Count())
	assert.Equal(t, uint64(3), a.Counters().Duration.Count())
	d := c.Counters().Duration
	assert.Equal(t, uint64(4), d.Count())
	assert.Equal(t, time.Second+15*time.Millisecond, d.Sum)
}

func TestCountingDoesNotAllocate(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"})
	var total Counters
	allocs := testing.AllocsPerRun(100, func() {
		bs[0].CountRequest()
		bs[1].CountBytes(3, 4)
		total = c.Counters()
	})
	assert.Zero(t, allocs)
	assert.NotZero(t, total.Requests)
}

func TestStateNamesWhereABackendStands(t *testing.T) {
	cs, _, bs := newCluster(t, Config{MaxFailures: 1}, RoundRobin, spec{id: "a"})
	a := bs[0]
	assert.Equal(t, "up", a.State())
	a.ConnectStarted()
	a.ConnectFailed(t0)
	assert.Equal(t, "down", a.State())
	a.SetHealthy(false)
	assert.Equal(t, "unhealthy", a.State(), "the health checks' verdict wins")
	a.SetHealthy(true)
	require.NoError(t, cs.RemoveBackend("c", "a"))
	assert.Equal(t, "removed", a.State())
}
