package eval

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// FrechetDistance is the Fréchet distance between Gaussians fitted to two
// sets of feature vectors, the formula behind FID:
//
//	‖μa − μb‖² + Tr(Σa + Σb − 2(Σa Σb)^{1/2})
//
// with unbiased (n−1) covariances. Each set needs at least two vectors, all
// of one non-zero dimension, shared by both sets.
//
// Σa Σb is not symmetric, so a general matrix square root (as scipy's sqrtm
// in the reference FID code) can return complex noise for singular
// covariances, which are the norm when there are fewer samples than
// dimensions. Instead we use Tr((Σa Σb)^{1/2}) = Tr((√Σa Σb √Σa)^{1/2}):
// both matrices have the same eigenvalues, and the right-hand one is
// symmetric PSD, so two symmetric eigendecompositions suffice, with round-off
// negatives clamped to 0. The result is clamped at 0 for the same reason.
func FrechetDistance(a, b [][]float64) (float64, error) {
	muA, covA, err := gaussianFit(a)
	if err != nil {
		return 0, fmt.Errorf("first set: %w", err)
	}
	muB, covB, err := gaussianFit(b)
	if err != nil {
		return 0, fmt.Errorf("second set: %w", err)
	}
	d := len(muA)
	if len(muB) != d {
		return 0, fmt.Errorf("feature dimensions differ: %d vs %d", d, len(muB))
	}

	var meanTerm float64
	for i := range muA {
		diff := muA[i] - muB[i]
		meanTerm += diff * diff
	}

	sqrtA, err := sqrtSym(covA)
	if err != nil {
		return 0, fmt.Errorf("square root of first covariance: %w", err)
	}
	var tmp, prod mat.Dense
	tmp.Mul(sqrtA, covB)
	prod.Mul(&tmp, sqrtA)
	// Symmetrise explicitly: the product is symmetric in exact arithmetic
	// only, and EigenSym reads just one triangle.
	m := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			m.SetSym(i, j, 0.5*(prod.At(i, j)+prod.At(j, i)))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(m, false) {
		return 0, errors.New("eigendecomposition of √Σa Σb √Σa failed")
	}
	var trSqrt float64
	for _, v := range eig.Values(nil) {
		trSqrt += math.Sqrt(math.Max(v, 0))
	}

	fd := meanTerm + mat.Trace(covA) + mat.Trace(covB) - 2*trSqrt
	if math.IsNaN(fd) || math.IsInf(fd, 0) {
		return 0, errors.New("non-finite result: features contain NaN or Inf")
	}
	return math.Max(fd, 0), nil
}

// gaussianFit returns the mean and the unbiased covariance of the rows.
func gaussianFit(x [][]float64) ([]float64, *mat.SymDense, error) {
	n := len(x)
	if n < 2 {
		return nil, nil, fmt.Errorf("need at least 2 feature vectors, got %d", n)
	}
	d := len(x[0])
	if d == 0 {
		return nil, nil, errors.New("feature vectors are empty")
	}
	mu := make([]float64, d)
	for i, row := range x {
		if len(row) != d {
			return nil, nil, fmt.Errorf("vector %d has dimension %d, vector 0 has %d", i, len(row), d)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("vector %d, component %d is %v", i, j, v)
			}
			mu[j] += v
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	centred := mat.NewDense(n, d, nil)
	for i, row := range x {
		for j, v := range row {
			centred.Set(i, j, v-mu[j])
		}
	}
	cov := mat.NewSymDense(d, nil)
	// SymOuterK computes alpha·X·Xᵀ; with X = centredᵀ that is the d×d covariance.
	cov.SymOuterK(1/float64(n-1), centred.T())
	return mu, cov, nil
}

// sqrtSym returns the PSD square root V·diag(√max(λ,0))·Vᵀ of a symmetric matrix.
func sqrtSym(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, errors.New("eigendecomposition failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	d := len(vals)
	scaled := mat.NewDense(d, d, nil)
	for j, v := range vals {
		r := math.Sqrt(math.Max(v, 0))
		for i := 0; i < d; i++ {
			scaled.Set(i, j, vecs.At(i, j)*r)
		}
	}
	var out mat.Dense
	out.Mul(scaled, vecs.T())
	return &out, nil
}
