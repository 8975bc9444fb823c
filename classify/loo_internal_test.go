package classify

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLeaveOneOutClosedForm checks the closed-form left-out cache against the definition: drop key i,
// build the cache from the others (solving their values anew), score key i.
func TestLeaveOneOutClosedForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, classes, dims = 12, 3, 6
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Key: Normalize(gaussian(rng, dims)), Label: i % classes}
	}
	for _, values := range []Values{ValuesLabels, ValuesSolved} {
		t.Run(string(values), func(t *testing.T) {
			m := &Model{Method: MethodTip, Head: &Head{Labels: []string{"a", "b", "c"}}, Entries: entries, Values: values, Lambda: 0.2}
			dots, err := keyDots(context.Background(), entries)
			if err != nil {
				t.Fatal(err)
			}
			const beta = 3.0
			got := make([][]float64, n)
			for i := range got {
				got[i] = make([]float64, classes)
			}
			if err := leaveOneOutCache(context.Background(), got, m, dots, beta, m.Lambda); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				rest := append(append([]Entry{}, entries[:i]...), entries[i+1:]...)
				if values == ValuesSolved {
					vs, err := SolveValues(context.Background(), rest, classes, beta, m.Lambda)
					if err != nil {
						t.Fatal(err)
					}
					for j := range rest {
						rest[j].Values = vs[j]
					}
				}
				want := ResidualTip(entries[i].Key, rest, classes, 1, beta)
				for c := range want {
					if math.Abs(got[i][c]-want[c]) > 1e-4 {
						t.Fatalf("key %d: closed form %v, refit %v", i, got[i], want)
					}
				}
			}
		})
	}
}
