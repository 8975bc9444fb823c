package eval

import (
	"math"
	"testing"
)

// ssimReference is the textbook definition, written independently of SSIM:
// for every position where the 11×11 window fits, weighted means, variances
// and covariance from a directly computed 2-D Gaussian window, then the
// SSIM formula; the result is the mean over those positions.
func ssimReference(a, b []float32, w, h int, peak float64) float64 {
	const r, sigma = 5, 1.5
	var win [2*r + 1][2*r + 1]float64
	var sum float64
	for u := -r; u <= r; u++ {
		for v := -r; v <= r; v++ {
			win[u+r][v+r] = math.Exp(-float64(u*u+v*v) / (2 * sigma * sigma))
			sum += win[u+r][v+r]
		}
	}
	c1, c2 := math.Pow(0.01*peak, 2), math.Pow(0.03*peak, 2)
	var total float64
	count := 0
	for y := r; y < h-r; y++ {
		for x := r; x < w-r; x++ {
			var mx, my float64
			for u := -r; u <= r; u++ {
				for v := -r; v <= r; v++ {
					g := win[u+r][v+r] / sum
					mx += g * float64(a[(y+u)*w+x+v])
					my += g * float64(b[(y+u)*w+x+v])
				}
			}
			var vx, vy, cxy float64
			for u := -r; u <= r; u++ {
				for v := -r; v <= r; v++ {
					g := win[u+r][v+r] / sum
					dx := float64(a[(y+u)*w+x+v]) - mx
					dy := float64(b[(y+u)*w+x+v]) - my
					vx += g * dx * dx
					vy += g * dy * dy
					cxy += g * dx * dy
				}
			}
			total += (2*mx*my + c1) * (2*cxy + c2) / ((mx*mx + my*my + c1) * (vx + vy + c2))
			count++
		}
	}
	return total / float64(count)
}

func TestSSIMGolden(t *testing.T) {
	// Both implementations are float64 throughout; they differ in summation
	// order and in E[x²]−E[x]² versus E[(x−μ)²], so 1e-10 is ample.
	const tol = 1e-10
	a := pattern(32, 32, 0)
	nz := noise(32 * 32)
	b := make([]float32, len(a))
	for i := range a {
		b[i] = a[i]*0.8 + 0.1 + float32(0.15*nz[i])
	}
	tests := []struct {
		name string
		a, b []float32
		peak float64
		// pinned is the value the reference produced when this test was
		// written, guarding against both implementations drifting together.
		pinned float64
	}{
		{"textured pair, peak 1", a, b, 1, 0.8772563637},
		{"textured pair, peak 2", a, b, 2, 0.8822069508},
		{"two different patterns", a, pattern(32, 32, 1.3), 1, 0.3837731078},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SSIM(tc.a, tc.b, 32, 32, tc.peak)
			want := ssimReference(tc.a, tc.b, 32, 32, tc.peak)
			if math.Abs(got-want) > tol {
				t.Fatalf("SSIM %.12f, reference %.12f", got, want)
			}
			if math.Abs(got-tc.pinned) > 1e-9 {
				t.Fatalf("SSIM %.10f, pinned %.10f", got, tc.pinned)
			}
		})
	}
}

func TestSSIMRelations(t *testing.T) {
	a := pattern(32, 32, 0)
	t.Run("identical is 1", func(t *testing.T) {
		if got := SSIM(a, a, 32, 32, 1); math.Abs(got-1) > 1e-12 {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("constant images have the closed form", func(t *testing.T) {
		// Zero variances leave only the luminance term, (2μxμy+C1)/(μx²+μy²+C1).
		x, y := 0.3, 0.5
		want := (2*x*y + 1e-4) / (x*x + y*y + 1e-4)
		got := SSIM(constImage(32*32, float32(x)), constImage(32*32, float32(y)), 32, 32, 1)
		if math.Abs(got-want) > 1e-6 { // float32 rounding of 0.3
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("constant shift lowers it", func(t *testing.T) {
		b := make([]float32, len(a))
		for i := range a {
			b[i] = a[i] + 0.2
		}
		if got := SSIM(a, b, 32, 32, 1); !(got < 0.99) {
			t.Fatalf("shifted SSIM %v, want < 0.99", got)
		}
	})
	t.Run("noise lowers it monotonically", func(t *testing.T) {
		nz := noise(len(a))
		prev := 1.0
		for _, s := range []float64{0.01, 0.03, 0.1, 0.3, 1} {
			b := make([]float32, len(a))
			for i := range a {
				b[i] = a[i] + float32(s*nz[i])
			}
			got := SSIM(a, b, 32, 32, 1)
			if !(got < prev) {
				t.Fatalf("noise %.2f: SSIM %v not below %v", s, got, prev)
			}
			prev = got
		}
	})
	t.Run("symmetric", func(t *testing.T) {
		b := pattern(32, 32, 0.4)
		if d := SSIM(a, b, 32, 32, 1) - SSIM(b, a, 32, 32, 1); math.Abs(d) > 1e-15 {
			t.Fatalf("asymmetry %v", d)
		}
	})
}

func TestSSIMInvalid(t *testing.T) {
	a := pattern(32, 32, 0)
	tests := []struct {
		name string
		a, b []float32
		w, h int
		peak float64
	}{
		{"wrong length", a[:100], a[:100], 32, 32, 1},
		{"smaller than window", a[:100], a[:100], 10, 10, 1},
		{"zero peak", a, a, 32, 32, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SSIM(tc.a, tc.b, tc.w, tc.h, tc.peak); !math.IsNaN(got) {
				t.Fatalf("got %v, want NaN", got)
			}
		})
	}
	if _, err := MeanSSIM([][]float32{a}, [][]float32{a[:10]}, 32, 32, 1); err == nil {
		t.Fatal("MeanSSIM: want error for a bad pair")
	}
	got, err := MeanSSIM([][]float32{a, a}, [][]float32{a, a}, 32, 32, 1)
	if err != nil || math.Abs(got-1) > 1e-12 {
		t.Fatalf("MeanSSIM of identical sets: %v, %v", got, err)
	}
}
