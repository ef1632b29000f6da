package backend

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyIsFNV1aThenMixed(t *testing.T) {
	for _, s := range []string{"", "a", "key-1", "key-2", "10.0.0.1:443", "a much longer key with spaces and ünïcödé"} {
		f := fnv.New64a()
		f.Write([]byte(s))
		assert.Equal(t, mix(f.Sum64()), Key(s), "%q", s)
		assert.Equal(t, Key(s), KeyBytes([]byte(s)), "%q", s)
	}
	// Pinned: a change here moves every key of every deployed proxy.
	assert.Equal(t, uint64(0xb8f083f8274e036a), Key(""))
	assert.Equal(t, uint64(0x36089f236d0081d8), Key("key-1"))
	assert.NotEqual(t, Key("key-1"), Key("key-2"))

	assert.Zero(t, testing.AllocsPerRun(100, func() {
		_ = Key("some client address")
		_ = KeyBytes([]byte("x"))
	}))
}

// names returns n backend specs of default weight named b0, b1, ...
func names(n int) []spec {
	specs := make([]spec, n)
	for i := range specs {
		specs[i] = spec{id: fmt.Sprintf("b%d", i)}
	}
	return specs
}

func TestNonKeyPoliciesIgnoreTheKey(t *testing.T) {
	_, c, _ := newCluster(t, Config{}, RoundRobin, spec{id: "a"}, spec{id: "b"}, spec{id: "c"})
	var got []string
	for range 6 {
		b, err := c.PickKey(t0, 42, nil)
		require.NoError(t, err)
		got = append(got, b.ID)
	}
	assert.Equal(t, []string{"a", "b", "c", "a", "b", "c"}, got)
	_, c, _ = newCluster(t, Config{}, RoundRobin)
	_, err := c.PickKey(t0, 42, nil)
	require.ErrorIs(t, err, ErrNoBackend)
}

// firstKey is a user KeyPicker: the candidate at key modulo their number.
type firstKey struct{}

func (firstKey) NewPicker() Picker { return firstKeyPicker{} }
func (firstKey) String() string    { return "firstkey" }

type firstKeyPicker struct{}

func (firstKeyPicker) Reset([]*Backend)             {}
func (firstKeyPicker) Pick(cs *Candidates) *Backend { return cs.At(0) }
func (firstKeyPicker) PickKey(cs *Candidates, k uint64) *Backend {
	return cs.At(int(k % uint64(cs.Len())))
}

func TestUserKeyPicker(t *testing.T) {
	_, c, bs := newCluster(t, Config{}, firstKey{}, names(3)...)
	for k := range uint64(6) {
		b, err := c.PickKey(t0, k, nil)
		require.NoError(t, err)
		assert.Same(t, bs[k%3], b, "the key reaches the picker as given")
	}
	b, err := c.Pick(t0, nil)
	require.NoError(t, err)
	assert.Same(t, bs[0], b, "no key: Pick")
}
