package classify

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// The search grids of tuning (leave-one-out here, held-out images in the evaluation): α past the papers'
// range (on weak features the labelled keys may be worth more than the zero-shot head), β from broad to
// sharp affinities, λ around DefaultLambda.
var (
	TuneAlphas  = []float64{0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000}
	TuneBetas   = []float64{1, 2, 5.5, 10, 20, 50, 100}
	TuneLambdas = []float64{0.03, 0.1, 0.3, 1}
)

// TuneLeaveOneOut picks a labelled cache's α and β (and λ for solved values) by leave-one-out accuracy on
// its own keys: each key is classified by the zero-shot head plus the cache without it. No held-out data is
// needed, and for solved values the left-out prediction has a closed form (with A = (K + λI)⁻¹ and V = A·Y,
// key i's cache without it is Y_i − V_i / A_ii), so the search costs one inverse per (β, λ). It returns the
// accuracy reached. It stops with a CodeCanceled error when ctx ends (checked between and within the (β, λ)
// steps; one factorisation is not interrupted).
func TuneLeaveOneOut(ctx context.Context, m *Model) (float64, error) {
	n, classes := len(m.Entries), len(m.Head.Labels)
	if n < 2 {
		return 0, fmt.Errorf("classify: leave-one-out needs two keys or more (got %d)", n)
	}
	zero := make([][]float64, n)
	labels := make([]int, n)
	for i, e := range m.Entries {
		zero[i] = m.Head.Logits(e.Key)
		labels[i] = e.Label
	}
	dots, err := keyDots(ctx, m.Entries)
	if err != nil {
		return 0, err
	}
	cache := make([][]float64, n)
	for i := range cache {
		cache[i] = make([]float64, classes)
	}
	k, acc, err := SearchKnobs(m, labels, func(beta, lambda float64) ([][]float64, [][]float64, error) {
		return zero, cache, leaveOneOutCache(ctx, cache, m, dots, beta, lambda)
	})
	if err != nil {
		return 0, err
	}
	m.Alpha, m.Beta, m.Lambda = k.Alpha, k.Beta, k.Lambda
	if m.Values != ValuesSolved {
		return acc, nil
	}
	return acc, m.resolveWith(ctx, dots)
}

// Knobs are a cache model's α, β and λ.
type Knobs struct{ Alpha, Beta, Lambda float64 }

// SearchKnobs searches TuneAlphas × TuneBetas (× TuneLambdas for solved values; else m's λ) for the best
// accuracy of argmax(zero_i + α·cache_i) against labels. parts gives each item's zero-shot logits and its
// cache residual at α = 1 for a β and λ: the residual is linear in α, so each (β, λ) is scored once and
// every α reuses it. Ties keep the first setting in grid order (the smallest β, λ and α).
func SearchKnobs(m *Model, labels []int, parts func(beta, lambda float64) (zero, cache [][]float64, err error)) (Knobs, float64, error) {
	lambdas := []float64{m.Lambda}
	if m.Values == ValuesSolved {
		lambdas = TuneLambdas
	}
	best, bestAcc := Knobs{}, -1.0
	logits := make([]float64, len(m.Head.Labels))
	for _, beta := range TuneBetas {
		for _, lambda := range lambdas {
			zero, cache, err := parts(beta, lambda)
			if err != nil {
				return Knobs{}, 0, err
			}
			for _, alpha := range TuneAlphas {
				correct := 0
				for i, label := range labels {
					for c := range logits {
						logits[c] = zero[i][c] + alpha*cache[i][c]
					}
					if Argmax(logits) == label {
						correct++
					}
				}
				if acc := float64(correct) / float64(len(labels)); acc > bestAcc {
					best, bestAcc = Knobs{alpha, beta, lambda}, acc
				}
			}
		}
	}
	return best, bestAcc, nil
}

// leaveOneOutCache fills cache[i] with the residual (α = 1) key i gets from the other keys at β (and λ).
func leaveOneOutCache(ctx context.Context, cache [][]float64, m *Model, dots *mat.SymDense, beta, lambda float64) error {
	n := len(m.Entries)
	if m.Values != ValuesSolved {
		for i := range n {
			if err := canceled(ctx); err != nil {
				return err
			}
			clear(cache[i])
			for j, e := range m.Entries {
				if j != i {
					cache[i][e.Label] += math.Exp(-beta * (1 - dots.At(i, j)))
				}
			}
		}
		return nil
	}
	chol, err := ridgeFactor(ctx, dots, beta, lambda)
	if err != nil {
		return err
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		return fmt.Errorf("classify: inverting the cache's affinities: %w", err)
	}
	for i := range n {
		if err := canceled(ctx); err != nil {
			return err
		}
		clear(cache[i])
		aii := inv.At(i, i)
		for c := range cache[i] {
			v := 0.0 // V_ic = Σ_j A_ij·Y_jc
			for j, e := range m.Entries {
				if e.Label == c {
					v += inv.At(i, j)
				}
			}
			cache[i][c] = -v / aii
		}
		cache[i][m.Entries[i].Label]++
	}
	return nil
}
