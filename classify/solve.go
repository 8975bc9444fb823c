package classify

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/cachetlab/cachet"
)

// Values says what a Tip-Adapter cache returns for a key.
type Values string

const (
	// ValuesLabels: each key votes for its own label (Tip-Adapter's one-hot L).
	ValuesLabels = Values("labels")
	// ValuesSolved: each key returns a vector over the labels, solved in closed form so that the cache
	// reproduces the labelled samples' one-hot labels (kernel ridge regression with Tip-Adapter's affinity
	// as the kernel, the reading of Tip-Adapter in ProKeR, Bendou et al. 2025). Tip-Adapter's vote is a
	// Nadaraya–Watson average: near-duplicate keys outvote a lone typical one, and every key pulls towards
	// its label however well its neighbours already explain it. Solving the values discounts redundant keys
	// and lets keys push away from labels they resemble but are not. No training: one N×N solve (C
	// right-hand sides) at build.
	ValuesSolved = Values("solved")
	// ValuesPropagated: every sample is a key whose value is its label distribution after label
	// propagation over the pool's graph (Propagate); a query averages its nearest keys' values
	// (ResidualPropagated). Set by a build's "propagate", for TFUP and Tip-Adapter alike.
	ValuesPropagated = Values("propagated")
)

// DefaultLambda is the solve's ridge, relative to the affinities' diagonal of 1: small enough that the
// cache fits its labelled keys closely, large enough to keep the solve well conditioned when keys nearly
// coincide. Held-out searches on Fashion-MNIST pick 0.03–0.1 (eval/reports/classify).
const DefaultLambda = 0.1

// MaxSolvedSamples bounds the labelled samples of a build with solved values or tune: both compare
// every pair of keys (n²·d) and factorise an n×n matrix (n³), tune once for each of its 28 (β, λ). With
// the default 16,384-value keys (BenchmarkSolveValues, BenchmarkTuneLeaveOneOut) the solve and the tune
// take 0.16 and 0.30 CPU-seconds over 250 keys, 0.79 and 1.34 over 500, 1.83 and 3.5 over 750.
const MaxSolvedSamples = 500

// ParseValues checks a requested value kind ("" is ValuesLabels).
func ParseValues(s string) (Values, error) {
	switch Values(s) {
	case "", ValuesLabels:
		return ValuesLabels, nil
	case ValuesSolved:
		return ValuesSolved, nil
	}
	return "", cachet.Errorf(cachet.CodeInvalidArgument, "values %q: use %q (each sample votes for its label) or %q (closed-form solved votes)", s, ValuesLabels, ValuesSolved)
}

// SolveValues returns each entry's value vector V (entries × classes) solving (K + λI)·V = Y, where
// K_ij = exp(−β(1 − F_i·F_j)) is the cache's own affinity and Y the entries' one-hot labels: the cache
// logits α·exp(−β(1 − f·Fᵀ))·V then fit the labelled keys as a kernel ridge regression.
// Its cost grows as n²·d + n³ (see MaxSolvedSamples); it stops with a CodeCanceled error when ctx ends.
func SolveValues(ctx context.Context, entries []Entry, classes int, beta, lambda float64) ([][]float64, error) {
	dots, err := keyDots(ctx, entries)
	if err != nil {
		return nil, err
	}
	return solveValues(ctx, entries, dots, classes, beta, lambda)
}

// solveValues is SolveValues given the entries' key cosines (keyDots).
func solveValues(ctx context.Context, entries []Entry, dots *mat.SymDense, classes int, beta, lambda float64) ([][]float64, error) {
	n := len(entries)
	if n == 0 {
		return nil, nil
	}
	if !(lambda > 0) || math.IsInf(lambda, 0) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "lambda must be positive (got %v)", lambda)
	}
	y := mat.NewDense(n, classes, nil)
	for i, e := range entries {
		if e.Label < 0 || e.Label >= classes {
			return nil, fmt.Errorf("classify: entry %d has label %d of %d", i, e.Label, classes)
		}
		y.Set(i, e.Label, 1)
	}
	chol, err := ridgeFactor(ctx, dots, beta, lambda)
	if err != nil {
		return nil, err
	}
	var v mat.Dense
	if err := chol.SolveTo(&v, y); err != nil {
		return nil, fmt.Errorf("classify: solving the cache values: %w", err)
	}
	out := make([][]float64, n)
	for i := range out {
		out[i] = mat.Row(nil, i, &v)
	}
	return out, nil
}

// keyDots is the entries' pairwise key cosines. A row costs up to n·d (milliseconds at the limit), so ctx
// is checked every row.
func keyDots(ctx context.Context, entries []Entry) (*mat.SymDense, error) {
	n := len(entries)
	dots := mat.NewSymDense(n, nil)
	for i := range n {
		if err := canceled(ctx); err != nil {
			return nil, err
		}
		for j := i; j < n; j++ {
			dots.SetSym(i, j, Dot(entries[i].Key, entries[j].Key))
		}
	}
	return dots, nil
}

// canceled is a build's error once ctx has ended.
func canceled(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return cachet.Wrap(cachet.CodeCanceled, err, "the build was canceled")
	}
	return nil
}

// ridgeFactor is the Cholesky factor of K + λI, K_ij = exp(−β(1 − dots_ij)) the cache's affinities. The
// affinity is a positive semi-definite kernel (exp of a cosine), so K + λI is positive definite. The
// factorisation itself cannot be interrupted: ctx is checked while K is filled and after.
func ridgeFactor(ctx context.Context, dots *mat.SymDense, beta, lambda float64) (*mat.Cholesky, error) {
	n := dots.SymmetricDim()
	k := mat.NewSymDense(n, nil)
	for i := range n {
		if i%64 == 0 {
			if err := canceled(ctx); err != nil {
				return nil, err
			}
		}
		for j := i; j < n; j++ {
			k.SetSym(i, j, math.Exp(-beta*(1-dots.At(i, j))))
		}
		k.SetSym(i, i, k.At(i, i)+lambda)
	}
	var chol mat.Cholesky
	if !chol.Factorize(k) {
		return nil, fmt.Errorf("classify: the cache's affinity matrix (%d keys, β %v, λ %v) is not positive definite", n, beta, lambda)
	}
	if err := canceled(ctx); err != nil {
		return nil, err
	}
	return &chol, nil
}
