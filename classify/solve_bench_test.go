package classify_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cachetlab/cachet/classify"
)

// benchDims is the default feature size (block 5, 8×8 regions, width 256): an unwhitened Tip-Adapter
// cache's key size.
const benchDims = 16384

// tipModel is a Tip-Adapter model with solved values over n random keys of d values and 10 classes.
func tipModel(tb testing.TB, n, d int) *classify.Model {
	tb.Helper()
	labels := make([]string, 10)
	protos := make([][]float64, len(labels))
	for c, p := range randomKeys(len(labels), d) {
		labels[c] = fmt.Sprint("class ", c)
		protos[c] = make([]float64, d)
		for j, v := range p {
			protos[c][j] = float64(v)
		}
	}
	head, err := classify.NewHead(labels, protos, false)
	if err != nil {
		tb.Fatal(err)
	}
	entries := make([]classify.Entry, n)
	for i, k := range randomKeys(n, d) {
		entries[i] = classify.Entry{Key: k, Label: i % len(labels)}
	}
	return &classify.Model{Method: classify.MethodTip, Head: head, Entries: entries, Alpha: 1, Beta: 5.5,
		Values: classify.ValuesSolved, Lambda: classify.DefaultLambda}
}

// BenchmarkSolveValues is a build's solve of the cache values (n²·d key cosines, one n×n factorisation).
func BenchmarkSolveValues(b *testing.B) {
	for _, n := range []int{250, 500, 1000} {
		m := tipModel(b, n, benchDims)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := classify.SolveValues(context.Background(), m.Entries, len(m.Head.Labels), m.Beta, m.Lambda); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTuneLeaveOneOut is a build's tune with solved values: the key cosines once, then an n×n
// factorisation and inverse for each of the 28 (β, λ).
func BenchmarkTuneLeaveOneOut(b *testing.B) {
	for _, n := range []int{250, 500, 1000} {
		m := tipModel(b, n, benchDims)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := classify.TuneLeaveOneOut(context.Background(), m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
