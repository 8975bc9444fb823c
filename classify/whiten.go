package classify

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"github.com/cachetlab/cachet"
)

// Pool whitening: a collection's samples, labelled or not, show what its images look like, and the model's
// generated prototypes do not. Fitting the samples' top principal directions and scaling each by its
// variance^(−WhitenPower/2) gives a space in which a query is measured from the pool's mean rather than the
// prototypes' and no single dominant direction (size, brightness) swamps the class ones. It is closed
// form, needs no labels and adds rank·d multiply-adds per query.
const (
	// DefaultWhitenRank is the number of principal directions kept.
	DefaultWhitenRank = 32
	// WhitenPower scales direction k by λ_k^(−WhitenPower/2): 0 keeps the variances, 1 whitens fully.
	WhitenPower = 0.75
	// whitenSamplesPerDirection is how many samples each kept direction needs.
	whitenSamplesPerDirection = 8
	// MinWhitenSamples is the smallest pool whitening is fitted on.
	MinWhitenSamples = whitenSamplesPerDirection * DefaultWhitenRank
	// whitenFitSamples caps the rows the directions are fitted on (evenly strided over the pool); the mean
	// uses every sample. 2,000 rows of 16,384 values fit in a few seconds.
	whitenFitSamples = 2000
	// whitenOversample and whitenIterations are the randomized range finder's extra columns and power
	// iterations (Halko, Martinsson and Tropp 2011): enough for the leading directions' variances.
	whitenOversample = 16
	whitenIterations = 4
)

// FitWhitening returns the mean of features and rank basis rows: the top principal directions of the
// features, each scaled by its variance^(−power/2), so that Basis·(f − mean) is f in the pool's whitened
// coordinates. It is deterministic.
func FitWhitening(features [][]float32, rank int, power float64) (mean []float32, basis [][]float32, err error) {
	n := len(features)
	if rank < 1 || n < 2*rank {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "whitening %d directions needs at least %d samples (got %d)", rank, 2*rank, n)
	}
	d := len(features[0])
	mu := make([]float64, d)
	for _, f := range features {
		if len(f) != d {
			return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "whitening: features of %d and %d values", d, len(f))
		}
		for j, v := range f {
			mu[j] += float64(v)
		}
	}
	for j := range mu {
		mu[j] /= float64(n)
	}
	m := min(n, whitenFitSamples)
	x := mat.NewDense(m, d, nil)
	for i := range m {
		row := x.RawRowView(i)
		for j, v := range features[i*n/m] {
			row[j] = float64(v) - mu[j]
		}
	}
	k := min(rank+whitenOversample, m)
	q := rangeFinder(x, k)
	var b mat.Dense // k×d: x's rows in q's basis
	b.Mul(q.T(), x)
	var bbt mat.SymDense
	bbt.SymOuterK(1, &b)
	var eig mat.EigenSym
	if !eig.Factorize(&bbt, true) {
		return nil, nil, cachet.Errorf(cachet.CodeInternal, "whitening: the eigendecomposition did not converge")
	}
	vals := eig.Values(nil) // ascending
	var u mat.Dense
	eig.VectorsTo(&u)
	basis = make([][]float32, rank)
	for r := range rank {
		col := k - 1 - r
		s2 := vals[col] // squared singular value: m × the direction's variance
		if !(s2 > 1e-9*vals[k-1]) {
			return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "whitening: the samples span fewer than %d directions; add more varied samples or build without whitening", rank)
		}
		// The right singular vector bᵀu/σ, scaled by (σ²/m)^(−power/2).
		scale := math.Pow(s2/float64(m), -power/2) / math.Sqrt(s2)
		row := make([]float32, d)
		for j := range d {
			s := 0.0
			for i := range k {
				s += b.At(i, j) * u.At(i, col)
			}
			row[j] = float32(s * scale)
		}
		basis[r] = row
	}
	mean = make([]float32, d)
	for j, v := range mu {
		mean[j] = float32(v)
	}
	return mean, basis, nil
}

// rangeFinder returns an m×k orthonormal basis of x's leading column space (randomized subspace
// iteration, seeded).
func rangeFinder(x *mat.Dense, k int) *mat.Dense {
	m, d := x.Dims()
	rng := rand.New(rand.NewPCG(1, 2))
	omega := mat.NewDense(d, k, nil)
	for i := range d {
		for j := range k {
			omega.Set(i, j, rng.NormFloat64())
		}
	}
	y := mat.NewDense(m, k, nil)
	y.Mul(x, omega)
	q := orthonormal(y)
	for range whitenIterations {
		z := mat.NewDense(d, k, nil)
		z.Mul(x.T(), q)
		y.Mul(x, orthonormal(z))
		q = orthonormal(y)
	}
	return q
}

// orthonormal returns a's columns orthonormalised (Gram–Schmidt, twice for accuracy); gonum's QR would
// form the full square Q of a tall matrix. A column that vanishes is left zero.
func orthonormal(a *mat.Dense) *mat.Dense {
	r, c := a.Dims()
	cols := make([][]float64, c)
	for j := range c {
		cols[j] = mat.Col(nil, j, a)
	}
	for range 2 {
		for j, v := range cols {
			for _, u := range cols[:j] {
				dot := floats.Dot(u, v)
				floats.AddScaled(v, -dot, u)
			}
			if norm := floats.Norm(v, 2); norm > 0 {
				floats.Scale(1/norm, v)
			}
		}
	}
	out := mat.NewDense(r, c, nil)
	for j, v := range cols {
		out.SetCol(j, v)
	}
	return out
}
