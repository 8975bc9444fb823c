package model_test

import (
	"context"
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// The branch seams: never skipping changes nothing, bit for bit; skipping every step and supplying the
// conditional prediction as the unconditional one turns guidance off, as sampling without guidance does.
func TestGuidanceBranchSeams(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		base := model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: 5, Steps: 4, Guidance: 3}
		sample := func(req model.SampleRequest) []float32 {
			t.Helper()
			res, err := m.Sample(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			return res.Pixels
		}
		plain := sample(base)
		observed := 0
		never := base
		never.Cache = everyStep{&model.Hooks{Branches: &model.Branches{
			Skip:    func() bool { return false },
			Observe: func(model.Branch, *model.Feature, *model.Feature) error { observed++; return nil },
		}}}
		tests := []struct {
			name      string
			req       model.SampleRequest
			want      []float32
			tolerance float64
		}{
			{"never skipping is the plain sampler", never, plain, 0},
			{"the conditional prediction as the unconditional one is no guidance", func() model.SampleRequest {
				r := base
				r.Cache = everyStep{&model.Hooks{Branches: &model.Branches{
					Skip:   func() bool { return true },
					Supply: func(_ model.Branch, c *model.Feature) (*model.Feature, error) { return c.Clone() },
				}}}
				return r
			}(), func() []float32 { r := base; r.Guidance = 1; return sample(r) }(), 1e-5},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got := sample(tc.req)
				for i := range got {
					if d := math.Abs(float64(got[i] - tc.want[i])); d > tc.tolerance {
						t.Fatalf("pixel %d: %v, want %v (tolerance %g)", i, got[i], tc.want[i], tc.tolerance)
					}
				}
			})
		}
		if observed != base.Steps {
			t.Errorf("Observe saw %d unconditional branches, want one a step (%d)", observed, base.Steps)
		}
		return nil
	})
}
