package stepcache_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// HyCa, BAC, ERTACache and AsymRnR on a random model: each profile comes from its own recorder, each policy
// is bit-exact with the uncached sampler when disabled (or reduced to nothing), and caches when enabled.
func TestProfiledSeedPolicies(t *testing.T) {
	onRandomModel(t, 8, func(cfg model.Config, sample func(model.StepCache) []float32) error {
		want := sample(nil)
		hyca := stepcache.NewHycaRecorder(cfg.Depth)
		bac := stepcache.NewBacRecorder(cfg.Depth)
		reusable := stepcache.NewErtaRecorder(cfg.Depth, 10) // every middle step reuses
		never := stepcache.NewErtaRecorder(cfg.Depth, 1e-12)
		for _, rec := range []model.StepCache{hyca, hyca, bac, bac, reusable, reusable, never} {
			if got := sample(rec); rec == hyca || rec == bac {
				same(t, "a recorder", got, want)
			}
		}
		hycaProfile, err := hyca.Profile(2, 2, 3)
		if err != nil || len(hycaProfile) != 2*cfg.Depth*cfg.Width {
			t.Fatalf("hyca profile of %d values: %v", len(hycaProfile), err)
		}
		bacProfile, err := bac.Calibration()
		if err != nil {
			t.Fatal(err)
		}
		ertaAll, err := reusable.Record()
		if err != nil {
			t.Fatal(err)
		}
		ertaNone, err := never.Record()
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			cfg    stepcache.Config
			exact  bool
			approx bool // within 1e-4 of uncached: the same computation in another order
		}{
			{"hyca every step", stepcache.Config{Name: "hyca", Params: map[string]float64{"interval": 1}, Calibration: hycaProfile}, true, false},
			{"hyca", stepcache.Config{Name: "hyca", Params: map[string]float64{"interval": 3}, Calibration: hycaProfile}, false, false},
			{"bac every step", stepcache.Config{Name: "bac", Params: map[string]float64{"share": 1}, Calibration: bacProfile}, true, false},
			{"bac", stepcache.Config{Name: "bac", Params: map[string]float64{"share": 0.25}, Calibration: bacProfile}, false, false},
			{"ertacache never reusing", stepcache.Config{Name: "ertacache", Params: map[string]float64{"threshold": 0.001}, Calibration: ertaNone}, true, false},
			{"ertacache", stepcache.Config{Name: "ertacache", Params: map[string]float64{"threshold": 2, "adjust": 1}, Calibration: ertaAll}, false, false},
			{"ertacache budget computing every step", stepcache.Config{Name: "ertacache", Params: map[string]float64{"budget": 1}, Calibration: ertaAll}, true, false},
			{"ertacache budget", stepcache.Config{Name: "ertacache", Params: map[string]float64{"budget": 0.5}, Calibration: ertaAll}, false, false},
			{"asymrnr off", stepcache.Config{Name: "asymrnr", Params: map[string]float64{"q": 0, "kv": 0}}, true, false},
			{"asymrnr keeping every token", stepcache.Config{Name: "asymrnr", Params: map[string]float64{"q": 0.01, "kv": 0.01}}, false, true},
			{"asymrnr", stepcache.Config{Name: "asymrnr"}, false, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p, err := stepcache.New(tc.cfg, cfg.Depth)
				if err != nil {
					t.Fatal(err)
				}
				got := sample(p)
				st := p.Stats()
				switch {
				case tc.exact:
					same(t, tc.name, got, want)
					if st.ComputeFraction != 1 {
						t.Errorf("compute fraction %v, want 1", st.ComputeFraction)
					}
				case tc.approx:
					for i := range want {
						if math.Abs(float64(got[i]-want[i])) > 1e-4 {
							t.Fatalf("pixel %d = %v, uncached %v", i, got[i], want[i])
						}
					}
				default:
					if st.ComputeFraction >= 1 {
						t.Errorf("stats %+v: nothing cached", st)
					}
					for i, v := range got {
						if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 10 {
							t.Fatalf("pixel %d = %v", i, v)
						}
					}
				}
			})
		}
		return nil
	})
}

func same(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: pixel %d = %v, uncached %v", what, i, got[i], want[i])
		}
	}
}
