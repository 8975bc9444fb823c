package stepcache_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// CFG-branch reuse computes the unconditional branch on its schedule and, in between, supplies the
// step's conditional prediction plus the last computed difference (order 0) or that difference
// extrapolated from the last two (order 1).
func TestCFGCacheSuppliesTheUnconditionalBranch(t *testing.T) {
	cond := func(s int) float64 { return 1 + 0.5*float64(s) }
	uncond := func(s int) float64 { return 0.2*float64(s) + 0.01*float64(s*s) }
	tests := []struct {
		name     string
		params   map[string]float64
		computed []bool
		want     func(s, last, prev int) float64
	}{
		{"interval 2, reuse", map[string]float64{"interval": 2, "warmup": 1}, []bool{true, true, false, true, false, true, false},
			func(s, last, _ int) float64 { return cond(s) + uncond(last) - cond(last) }},
		{"interval 3, warm-up 2, extrapolated", map[string]float64{"interval": 3, "warmup": 2, "order": 1},
			[]bool{true, true, true, false, false, true, false},
			func(s, last, prev int) float64 {
				d, dp := uncond(last)-cond(last), uncond(prev)-cond(prev)
				return cond(s) + d + float64(s-last)/float64(last-prev)*(d-dp)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := stepcache.New(stepcache.Config{Name: "cfgcache", Params: tc.params}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Begin(model.Schedule{Steps: len(tc.computed)}); err != nil {
				t.Fatal(err)
			}
			defer p.End()
			last, prev := -1, -1
			for s, wantComputed := range tc.computed {
				feature := func(v float64) *model.Feature {
					f, err := model.NewFeature([]float32{float32(v)}, []int64{1}, model.CPU)
					if err != nil {
						t.Fatal(err)
					}
					return f
				}
				var got float64
				out, err := p.Eval(s, func(h *model.Hooks) (*model.Feature, error) {
					c := feature(cond(s))
					defer c.Drop()
					if h.Branches.Skip() {
						if wantComputed {
							t.Errorf("step %d skipped the unconditional branch", s)
						}
						u, err := h.Branches.Supply(model.BranchUnconditional, c)
						if err != nil {
							return nil, err
						}
						v, err := u.Values()
						u.Drop()
						got = float64(v[0])
						if want := tc.want(s, last, prev); math.Abs(got-want) > 1e-5 {
							t.Errorf("step %d: unconditional %v, want %v", s, got, want)
						}
					} else {
						if !wantComputed {
							t.Errorf("step %d computed the unconditional branch", s)
						}
						u := feature(uncond(s))
						defer u.Drop()
						if err := h.Branches.Observe(model.BranchUnconditional, c, u); err != nil {
							return nil, err
						}
						prev, last = last, s
					}
					return c.Clone()
				})
				if err != nil {
					t.Fatal(err)
				}
				out.Drop()
			}
		})
	}
}
