package eval

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// axisSet returns 2d points μ ± s_i·e_i whose sample mean is exactly mu and
// whose unbiased sample covariance is exactly diag(vars):
// each axis gets two points at ±s, so Σ = diag(2s²/(n−1)) with n = 2d.
func axisSet(mu, vars []float64) [][]float64 {
	d := len(mu)
	n := 2 * d
	var out [][]float64
	for i := 0; i < d; i++ {
		s := math.Sqrt(vars[i] * float64(n-1) / 2)
		for _, sign := range []float64{1, -1} {
			p := append([]float64(nil), mu...)
			p[i] += sign * s
			out = append(out, p)
		}
	}
	return out
}

// diagFD is the closed form for diagonal covariances.
func diagFD(muA, varA, muB, varB []float64) float64 {
	var fd float64
	for i := range muA {
		fd += (muA[i]-muB[i])*(muA[i]-muB[i]) + varA[i] + varB[i] - 2*math.Sqrt(varA[i]*varB[i])
	}
	return fd
}

func randomSet(rng *rand.Rand, n, d int, mix *mat.Dense, shift float64) [][]float64 {
	out := make([][]float64, n)
	z := make([]float64, d)
	for i := range out {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		row := make([]float64, d)
		for j := range row {
			row[j] = shift
			for k := range z {
				row[j] += mix.At(j, k) * z[k]
			}
		}
		out[i] = row
	}
	return out
}

// frechetGeneral computes the same quantity the way the reference FID code
// does: a general (non-symmetric) eigendecomposition of Σa·Σb, summing the
// square roots of its eigenvalues (real parts; imaginary parts are noise).
func frechetGeneral(t *testing.T, a, b [][]float64) float64 {
	t.Helper()
	muA, covA, err := gaussianFit(a)
	if err != nil {
		t.Fatal(err)
	}
	muB, covB, err := gaussianFit(b)
	if err != nil {
		t.Fatal(err)
	}
	var prod mat.Dense
	prod.Mul(covA, covB)
	var eig mat.Eigen
	if !eig.Factorize(&prod, mat.EigenNone) {
		t.Fatal("eigen failed")
	}
	var tr float64
	for _, v := range eig.Values(nil) {
		tr += real(cmplx.Sqrt(complex(math.Max(real(v), 0), 0)))
	}
	var m float64
	for i := range muA {
		m += (muA[i] - muB[i]) * (muA[i] - muB[i])
	}
	return m + mat.Trace(covA) + mat.Trace(covB) - 2*tr
}

func TestFrechetClosedForm(t *testing.T) {
	tests := []struct {
		name                 string
		muA, varA, muB, varB []float64
	}{
		{"same covariance, shifted mean", []float64{0, 0, 0}, []float64{1, 2, 3}, []float64{1, -2, 0.5}, []float64{1, 2, 3}},
		{"same mean, different variances", []float64{1, 1}, []float64{1, 4}, []float64{1, 1}, []float64{9, 0.25}},
		{"both differ", []float64{0, 3, -1, 2}, []float64{0.5, 1, 2, 4}, []float64{1, 1, 1, 1}, []float64{2, 0.1, 2, 7}},
		{"one dimension", []float64{2}, []float64{4}, []float64{-1}, []float64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FrechetDistance(axisSet(tc.muA, tc.varA), axisSet(tc.muB, tc.varB))
			if err != nil {
				t.Fatal(err)
			}
			want := diagFD(tc.muA, tc.varA, tc.muB, tc.varB)
			// Exact sample statistics, so only eigensolver round-off remains.
			if math.Abs(got-want) > 1e-9*math.Max(1, want) {
				t.Fatalf("got %.12f, want %.12f", got, want)
			}
		})
	}
}

func TestFrechetSampledGaussians(t *testing.T) {
	// 20000 draws per set from N(μ, diag(v)); the estimate's sampling error
	// is O(d/n)+O(1/√n) relative, so 3 % of the population value is generous
	// yet far tighter than the value itself (≈ 10.6).
	rng := rand.New(rand.NewPCG(1, 2))
	muA, varA := []float64{0, 1, 2, 3}, []float64{1, 4, 0.25, 2}
	muB, varB := []float64{1, 1, 0, 3}, []float64{2, 1, 1, 2}
	draw := func(mu, v []float64) [][]float64 {
		out := make([][]float64, 20000)
		for i := range out {
			out[i] = make([]float64, len(mu))
			for j := range mu {
				out[i][j] = mu[j] + math.Sqrt(v[j])*rng.NormFloat64()
			}
		}
		return out
	}
	got, err := FrechetDistance(draw(muA, varA), draw(muB, varB))
	if err != nil {
		t.Fatal(err)
	}
	want := diagFD(muA, varA, muB, varB)
	if math.Abs(got-want) > 0.03*want {
		t.Fatalf("got %v, population value %v", got, want)
	}
}

func TestFrechetProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	mixA := mat.NewDense(5, 5, nil)
	mixB := mat.NewDense(5, 5, nil)
	for i := 0; i < 5; i++ {
		for j := 0; j < 5; j++ {
			mixA.Set(i, j, rng.NormFloat64())
			mixB.Set(i, j, rng.NormFloat64())
		}
	}
	a := randomSet(rng, 60, 5, mixA, 0)
	b := randomSet(rng, 40, 5, mixB, 0.5)

	t.Run("identical sets give 0", func(t *testing.T) {
		got, err := FrechetDistance(a, a)
		if err != nil || math.Abs(got) > 1e-9 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("symmetric", func(t *testing.T) {
		ab, err1 := FrechetDistance(a, b)
		ba, err2 := FrechetDistance(b, a)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if math.Abs(ab-ba) > 1e-9*ab {
			t.Fatalf("FD(a,b)=%v FD(b,a)=%v", ab, ba)
		}
	})
	t.Run("full covariances match the general eigen route", func(t *testing.T) {
		got, err := FrechetDistance(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if want := frechetGeneral(t, a, b); math.Abs(got-want) > 1e-8*want {
			t.Fatalf("got %v, general route %v", got, want)
		}
	})
	t.Run("fewer samples than dimensions stays finite", func(t *testing.T) {
		// Rank-deficient covariances: the case sqrtm struggles with.
		mix := mat.NewDense(12, 12, nil)
		for i := 0; i < 12; i++ {
			mix.Set(i, i, 1+float64(i)/4)
		}
		x := randomSet(rng, 5, 12, mix, 0)
		y := randomSet(rng, 6, 12, mix, 0.2)
		got, err := FrechetDistance(x, y)
		if err != nil || math.IsNaN(got) || got < 0 {
			t.Fatalf("got %v, %v", got, err)
		}
		if want := frechetGeneral(t, x, y); math.Abs(got-want) > 1e-6*want {
			t.Fatalf("got %v, general route %v", got, want)
		}
	})
}

func TestFrechetErrors(t *testing.T) {
	ok := [][]float64{{1, 2}, {3, 4}}
	tests := []struct {
		name string
		a, b [][]float64
	}{
		{"one sample", [][]float64{{1, 2}}, ok},
		{"no samples", ok, nil},
		{"empty vectors", [][]float64{{}, {}}, ok},
		{"ragged set", [][]float64{{1, 2}, {3}}, ok},
		{"dimension mismatch", ok, [][]float64{{1, 2, 3}, {4, 5, 6}}},
		{"NaN feature", [][]float64{{1, math.NaN()}, {3, 4}}, ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := FrechetDistance(tc.a, tc.b); err == nil {
				t.Fatalf("want error, got %v", got)
			}
		})
	}
}
