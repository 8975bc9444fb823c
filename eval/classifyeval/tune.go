package classifyeval

import "github.com/cachetlab/cachet/classify"

// tune picks the model's α, β (and λ for solved values) with the best accuracy on val (classify.SearchKnobs:
// each β and λ scores the images once).
func tune(m *classify.Model, val *validation) (classify.Model, float64, error) {
	feats := make([][]float32, len(val.feats))
	for i, raw := range val.feats {
		feats[i] = m.Head.Project(raw)
	}
	zero, cache := make([][]float64, len(feats)), make([][]float64, len(feats))
	k, acc, err := classify.SearchKnobs(m, val.labels, func(beta, lambda float64) ([][]float64, [][]float64, error) {
		try := *m
		try.Alpha, try.Beta, try.Lambda = 1, beta, lambda
		if err := try.Resolve(); err != nil {
			return nil, nil, err
		}
		for i, f := range feats {
			s := try.Score(f, nil)
			zero[i], cache[i] = s.ZeroShot, s.Cache
		}
		return zero, cache, nil
	})
	if err != nil {
		return *m, 0, err
	}
	best := *m
	best.Alpha, best.Beta, best.Lambda = k.Alpha, k.Beta, k.Lambda
	if err := best.Resolve(); err != nil {
		return *m, 0, err
	}
	return best, acc, nil
}
