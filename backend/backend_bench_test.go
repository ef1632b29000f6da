package backend

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkPick(b *testing.B) {
	for _, p := range allPolicies {
		b.Run(p.String(), func(b *testing.B) {
			specs := make([]spec, 10)
			for i := range specs {
				specs[i] = spec{id: string(rune('a' + i)), weight: 10 * (i + 1)}
			}
			_, c, _ := newCluster(b, Config{}, p, specs...)
			now := time.Unix(1_700_000_000, 0)
			b.ReportAllocs()
			for b.Loop() {
				be, err := c.Pick(now, nil)
				if err != nil {
					b.Fatal(err)
				}
				be.ConnectStarted()
				be.ConnectSucceeded(now, time.Millisecond)
				be.Released()
			}
		})
	}
}

func BenchmarkPickKey(b *testing.B) {
	for _, p := range hashPolicies {
		for _, n := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s/%d", p, n), func(b *testing.B) {
				specs := names(n)
				for i := range specs {
					specs[i].weight = 10 * (i%10 + 1)
				}
				_, c, _ := newCluster(b, Config{}, p, specs...)
				now := time.Unix(1_700_000_000, 0)
				keys := make([]uint64, 1024)
				for i := range keys {
					keys[i] = Key(fmt.Sprintf("client-%d", i))
				}
				if _, err := c.PickKey(now, keys[0], nil); err != nil { // Builds the table.
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					be, err := c.PickKey(now, keys[i%len(keys)], nil)
					if err != nil {
						b.Fatal(err)
					}
					i++
					be.ConnectStarted()
					be.ConnectSucceeded(now, time.Millisecond)
					be.Released()
				}
			})
		}
	}
}

// BenchmarkHashBuild measures the table or ring build that the first pick
// after a change of the backend set pays.
func BenchmarkHashBuild(b *testing.B) {
	for _, p := range hashPolicies {
		for _, n := range []int{10, 100} {
			b.Run(fmt.Sprintf("%s/%d", p, n), func(b *testing.B) {
				_, c, _ := newCluster(b, Config{}, p, names(n)...)
				now := time.Unix(1_700_000_000, 0)
				b.ReportAllocs()
				for b.Loop() {
					c.picker.Reset(c.backends)
					if _, err := c.PickKey(now, 1, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
