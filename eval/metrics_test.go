package eval

import (
	"math"
	"testing"
)

// pattern is a deterministic, textured w×h test image in [0,1].
func pattern(w, h int, phase float64) []float32 {
	out := make([]float32, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 0.5 + 0.3*math.Sin(0.7*float64(x)+phase) + 0.2*math.Cos(0.45*float64(y)+0.3*float64(x))
			out[y*w+x] = float32(math.Min(math.Max(v, 0), 1))
		}
	}
	return out
}

// noise is a deterministic zero-mean pattern in [-1,1] (an LCG), so that
// scaling it gives noise of increasing strength with the same shape.
func noise(n int) []float64 {
	out := make([]float64, n)
	s := uint32(12345)
	for i := range out {
		s = s*1664525 + 1013904223
		out[i] = float64(s>>8)/float64(1<<24)*2 - 1
	}
	return out
}

func constImage(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestPSNR(t *testing.T) {
	const tol = 1e-9 // dB
	tests := []struct {
		name string
		a, b []float32
		peak float64
		want float64
	}{
		{"identical is +Inf", []float32{0.1, 0.5, 0.9}, []float32{0.1, 0.5, 0.9}, 1, math.Inf(1)},
		{"uniform error 0.5 gives 6.0206 dB", constImage(4, 0), constImage(4, 0.5), 1, 20 * math.Log10(2)},
		{"peak 255, error 1 per pixel", constImage(4, 10), constImage(4, 11), 255, 20 * math.Log10(255)},
		{"one pixel off by 1 of 4", []float32{0, 0, 0, 0}, []float32{1, 0, 0, 0}, 1, 10 * math.Log10(4)},
		{"length mismatch is NaN", []float32{0}, []float32{0, 0}, 1, math.NaN()},
		{"empty is NaN", nil, nil, 1, math.NaN()},
		{"zero peak is NaN", []float32{0}, []float32{1}, 0, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PSNR(tc.a, tc.b, tc.peak)
			switch {
			case math.IsNaN(tc.want):
				if !math.IsNaN(got) {
					t.Fatalf("got %v, want NaN", got)
				}
			case math.IsInf(tc.want, 1):
				if !math.IsInf(got, 1) {
					t.Fatalf("got %v, want +Inf", got)
				}
			default:
				// 0.5 and 10/11 are exact in float32, so the tolerance is
				// only for log10 round-off.
				if math.Abs(got-tc.want) > tol {
					t.Fatalf("got %.12f, want %.12f", got, tc.want)
				}
			}
		})
	}
}

func TestMeanPSNR(t *testing.T) {
	a := [][]float32{constImage(4, 0), constImage(4, 0.3)}
	b := [][]float32{constImage(4, 0.5), constImage(4, 0.3)}
	got, err := MeanPSNR(a, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The identical pair counts as MaxPSNR, not +Inf.
	want := (20*math.Log10(2) + MaxPSNR) / 2
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("got %v, want %v", got, want)
	}
	for name, tc := range map[string][2][][]float32{
		"count mismatch": {a, b[:1]},
		"empty":          {nil, nil},
		"size mismatch":  {{constImage(4, 0)}, {constImage(3, 0)}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := MeanPSNR(tc[0], tc[1], 1); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestAccuracy(t *testing.T) {
	tests := []struct {
		name        string
		pred, truth []int
		want        float64
	}{
		{"all right", []int{1, 2, 3}, []int{1, 2, 3}, 1},
		{"half", []int{1, 2, 3, 4}, []int{1, 0, 3, 0}, 0.5},
		{"none", []int{1}, []int{2}, 0},
		{"length mismatch", []int{1}, []int{1, 2}, math.NaN()},
		{"empty", nil, nil, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Accuracy(tc.pred, tc.truth)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && got != tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func nan() float64 { return math.NaN() }
