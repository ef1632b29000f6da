package backend

import (
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
				be.ConnectSucceeded(now)
				be.Released()
			}
		})
	}
}
