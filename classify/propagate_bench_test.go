package classify_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/classify"
)

// randomKeys are n unit keys of d values.
func randomKeys(n, d int) [][]float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]float32, n)
	for i := range keys {
		v := make([]float64, d)
		for j := range v {
			v[j] = rng.NormFloat64()
		}
		keys[i] = classify.Normalize(v)
	}
	return keys
}

// BenchmarkNeighbourGraph is the build's O(n²·d) part at the propagated rank (128 values a key).
func BenchmarkNeighbourGraph(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		keys := randomKeys(n, classify.PropagateRank)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := classify.NeighbourGraph(context.Background(), keys, 10, classify.PropagatedBeta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPropagate is 40 spreading steps over a 10-NN graph of 4,000 samples and 10 classes.
func BenchmarkPropagate(b *testing.B) {
	keys := randomKeys(4000, classify.PropagateRank)
	g, err := classify.NeighbourGraph(context.Background(), keys, 10, classify.PropagatedBeta)
	if err != nil {
		b.Fatal(err)
	}
	start := make([][]float64, len(keys))
	for i := range start {
		start[i] = make([]float64, 10)
		if i%25 == 0 {
			start[i][i%10] = 1
		}
	}
	for b.Loop() {
		classify.Propagate(g, start, 0.9, 40)
	}
}

// BenchmarkResidualPropagated is one query's cache term over 40 candidate entries.
func BenchmarkResidualPropagated(b *testing.B) {
	keys := randomKeys(41, classify.PropagateRank)
	entries := make([]classify.Entry, 40)
	for i := range entries {
		entries[i] = classify.Entry{Key: keys[i+1], Values: []float64{0.5, 0.2, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0}}
	}
	for b.Loop() {
		classify.ResidualPropagated(keys[0], entries, 10, 10, classify.PropagatedAlpha, classify.PropagatedBeta)
	}
}
