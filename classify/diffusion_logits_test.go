package classify_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/classify"
)

func TestDiffusionLogits(t *testing.T) {
	tests := []struct {
		name string
		errs []float64
		want []float64
	}{
		{"none", nil, []float64{}},
		{"equal errors say nothing", []float64{0.3, 0.3, 0.3}, []float64{0, 0, 0}},
		// mean 2, sample sd 1: the least error gets the largest logit.
		{"z-scored and negated", []float64{1, 2, 3}, []float64{1, 0, -1}},
		{"scale-free", []float64{10, 20, 30}, []float64{1, 0, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classify.DiffusionLogits(tc.errs)
			if len(got) != len(tc.want) {
				t.Fatalf("%d logits, want %d", len(got), len(tc.want))
			}
			for c := range got {
				if math.Abs(got[c]-tc.want[c]) > 1e-12 {
					t.Fatalf("logits %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestScoresWithDiffusion(t *testing.T) {
	s := classify.Scores{ZeroShot: []float64{1, 2, 3}, Cache: []float64{0, 0, 0}, Logits: []float64{1, 2, 3}}
	got := s.WithDiffusion([]float64{1, 2, 3}, 10) // DiffusionLogits: 1, 0, −1
	want := []float64{11, 2, -7}
	for c := range want {
		if math.Abs(got.Logits[c]-want[c]) > 1e-12 || math.Abs(got.Diffusion[c]-(want[c]-s.Logits[c])) > 1e-12 {
			t.Fatalf("logits %v, diffusion %v; want logits %v", got.Logits, got.Diffusion, want)
		}
	}
	if s.Logits[0] != 1 || s.Diffusion != nil {
		t.Fatalf("the receiver changed: %+v", s)
	}
}
