package classifyeval

import (
	"slices"

	"github.com/cachetlab/cachet/classify"
)

// tune picks the model's α, β (and λ for solved values) with the best accuracy on val. The cache's
// residual is linear in α, so each β (and λ) scores the images once and every α reuses the parts.
func tune(m *classify.Model, val *validation) (classify.Model, float64, error) {
	feats := make([][]float32, len(val.feats))
	for i, raw := range val.feats {
		feats[i] = m.Head.Project(raw)
	}
	lambdas := []float64{m.Lambda}
	if m.Values == classify.ValuesSolved {
		lambdas = classify.TuneLambdas
	}
	best, bestAcc := *m, -1.0
	scores := make([]classify.Scores, len(feats))
	logits := make([]float64, len(m.Head.Labels))
	for _, b := range classify.TuneBetas {
		for _, l := range lambdas {
			try := *m
			try.Alpha, try.Beta, try.Lambda = 1, b, l
			try.Entries = slices.Clone(m.Entries)
			if err := try.Resolve(); err != nil {
				return best, 0, err
			}
			for i, f := range feats {
				scores[i] = try.Score(f, nil)
			}
			for _, a := range classify.TuneAlphas {
				correct := 0
				for i, s := range scores {
					for c := range logits {
						logits[c] = s.ZeroShot[c] + a*s.Cache[c]
					}
					if classify.Argmax(logits) == val.labels[i] {
						correct++
					}
				}
				if acc := float64(correct) / float64(len(feats)); acc > bestAcc {
					best, bestAcc = try, acc
					best.Alpha = a
				}
			}
		}
	}
	return best, bestAcc, nil
}
