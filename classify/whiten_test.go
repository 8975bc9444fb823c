package classify_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
)

// gaussianPool draws n points in d dimensions with standard deviations sd along random orthonormal
// directions (returned), around a fixed offset.
func gaussianPool(n, d int, sd []float64, seed uint64) ([][]float32, [][]float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	dirs := make([][]float64, len(sd))
	for k := range dirs {
		v := make([]float64, d)
		for j := range v {
			v[j] = rng.NormFloat64()
		}
		for _, u := range dirs[:k] { // Gram–Schmidt against the earlier directions
			dot := 0.0
			for j := range v {
				dot += v[j] * u[j]
			}
			for j := range v {
				v[j] -= dot * u[j]
			}
		}
		norm := 0.0
		for _, x := range v {
			norm += x * x
		}
		for j := range v {
			v[j] /= math.Sqrt(norm)
		}
		dirs[k] = v
	}
	out := make([][]float32, n)
	for i := range out {
		f := make([]float32, d)
		for j := range f {
			f[j] = 0.5 + 0.01*float32(rng.NormFloat64())
		}
		for k, s := range sd {
			a := s * rng.NormFloat64()
			for j := range f {
				f[j] += float32(a * dirs[k][j])
			}
		}
		out[i] = f
	}
	return out, dirs
}

func TestFitWhiteningRecoversTheDirectionsAndScalesThem(t *testing.T) {
	sd := []float64{8, 4, 2, 1}
	pool, dirs := gaussianPool(4000, 60, sd, 1)
	mean, basis, err := classify.FitWhitening(pool, 3, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if len(mean) != 60 || len(basis) != 3 || len(basis[0]) != 60 {
		t.Fatalf("mean %d values, basis %d×%d", len(mean), len(basis), len(basis[0]))
	}
	for k, b := range basis {
		t.Run(string(rune('0'+k)), func(t *testing.T) {
			norm, dot := 0.0, 0.0
			for j, x := range b {
				norm += float64(x) * float64(x)
				dot += float64(x) * dirs[k][j]
			}
			if c := math.Abs(dot) / math.Sqrt(norm); c < 0.99 {
				t.Errorf("direction %d: |cos| with the true one is %.3f, want ≥ 0.99", k, c)
			}
			// Power 0.5: the whitened coordinate's standard deviation is λ^(1/4) = sd^(1/2).
			var s2 float64
			for _, f := range pool {
				z := 0.0
				for j, x := range b {
					z += float64(x) * (float64(f[j]) - float64(mean[j]))
				}
				s2 += z * z
			}
			got, want := math.Sqrt(s2/float64(len(pool))), math.Sqrt(sd[k])
			if math.Abs(got-want)/want > 0.05 {
				t.Errorf("direction %d: whitened sd %.3f, want %.3f ± 5 %%", k, got, want)
			}
		})
	}
}

func TestFitWhiteningErrors(t *testing.T) {
	pool, _ := gaussianPool(100, 20, []float64{3, 2, 1}, 2)
	same := make([][]float32, 100)
	for i := range same {
		same[i] = pool[0]
	}
	ragged := append([][]float32{make([]float32, 19)}, pool[1:]...)
	for _, tc := range []struct {
		name string
		pool [][]float32
		rank int
	}{
		{"fewer than two samples per direction", pool[:9], 5},
		{"no directions", pool, 0},
		{"features of different lengths", ragged, 3},
		{"identical samples", same, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := classify.FitWhitening(tc.pool, tc.rank, 0.5)
			if !errors.Is(err, &cachet.Error{Code: cachet.CodeInvalidArgument}) {
				t.Fatalf("got %v, want an invalid_argument error", err)
			}
		})
	}
}

func TestWhitenedHeadMapsPrototypesIntoThePoolSpace(t *testing.T) {
	pool, _ := gaussianPool(600, 30, []float64{5, 3, 2, 1}, 3)
	raw := [][]float64{make([]float64, 30), make([]float64, 30)}
	for j := range 30 {
		raw[0][j], raw[1][j] = float64(pool[0][j]), float64(pool[1][j])
	}
	head, err := classify.NewHead([]string{"coat", "bag"}, raw, true)
	if err != nil {
		t.Fatal(err)
	}
	mean, basis, err := classify.FitWhitening(pool, 4, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	w, err := head.Whitened(mean, basis)
	if err != nil {
		t.Fatal(err)
	}
	if w.Dims() != 4 || w.InputDims() != 30 || head.InputDims() != 30 {
		t.Fatalf("whitened head: %d dims from %d inputs", w.Dims(), w.InputDims())
	}
	// A feature the pool's mean plus a multiple of a prototype's direction projects onto that prototype.
	for c := range head.W {
		f := make([]float32, 30)
		for j := range f {
			f[j] = mean[j] + 3*head.W[c][j]
		}
		if cos := w.Cosines(w.Project(f))[c]; math.Abs(cos-1) > 1e-5 {
			t.Errorf("label %d: cos(projected, prototype) = %v, want 1", c, cos)
		}
	}
	if _, err := w.Whitened(mean, basis); err == nil {
		t.Error("whitening a whitened head: no error")
	}
	if _, err := head.Whitened(mean[:10], basis); err == nil {
		t.Error("whitening of the wrong size: no error")
	}
}
