package slab

import "testing"

const benchLive = 10_000

type benchSession struct{ token int }

// sinkInt and sinkSession keep the compiler from discarding benchmarked work.
var (
	sinkInt     int
	sinkSession *benchSession
)

// newBenchSlab returns a warmed-up slab holding benchLive sessions, as an
// event loop would after reaching its steady connection count.
func newBenchSlab(b *testing.B) (*Slab[*benchSession], *benchSession) {
	b.Helper()
	sess := &benchSession{}
	s := New[*benchSession](0)
	for range benchLive {
		if _, err := s.Insert(sess); err != nil {
			b.Fatal(err)
		}
	}
	return s, sess
}

func BenchmarkInsertRemove(b *testing.B) {
	s, sess := newBenchSlab(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Remove(i % benchLive)
		k, err := s.Insert(sess)
		if err != nil {
			b.Fatal(err)
		}
		sinkInt = k
		i++
	}
}

func BenchmarkGet(b *testing.B) {
	s, _ := newBenchSlab(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v, _ := s.Get(i % benchLive)
		sinkSession = v
		i++
	}
}

func BenchmarkVacantInsertRemove(b *testing.B) {
	s, sess := newBenchSlab(b)
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.Vacant()
		if err != nil {
			b.Fatal(err)
		}
		v.Insert(sess)
		s.Remove(v.Key())
	}
}

func BenchmarkAll(b *testing.B) {
	s, _ := newBenchSlab(b)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for k := range s.All() {
			n += k
		}
		sinkInt = n
	}
}
