package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet/model"
)

// BacRecorder is a StepCache that computes every step and profiles each unit for BAC: the cosine
// similarity of its whole outputs between every two steps, and its volatility (the mean over step pairs
// of mean |A_i − A_j|), averaged over runs. Calibration gives what `cachet calibrate bac` saves.
type BacRecorder struct {
	depth, steps int
	outputs      map[unitKey][][]float32 // this run's, per step
	sim          [][]float64             // summed over runs, per unit
	volatility   []float64
	runs         int
}

// NewBacRecorder makes a recorder for a model of depth blocks.
func NewBacRecorder(depth int) *BacRecorder { return &BacRecorder{depth: depth} }

func (r *BacRecorder) Begin(s model.Schedule) error {
	if r.runs > 0 && s.Steps != r.steps {
		return fmt.Errorf("stepcache: bac recorder: a run of %d steps after one of %d", s.Steps, r.steps)
	}
	r.steps, r.outputs = s.Steps, map[unitKey][][]float32{}
	return nil
}

func (r *BacRecorder) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(&model.Hooks{Sublayer: func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		v, err := compute(nil)
		if err != nil {
			return nil, err
		}
		vals, err := v.Values()
		if err != nil {
			return nil, err
		}
		key := unitKey{block, kind}
		r.outputs[key] = append(r.outputs[key], vals)
		return v.Clone()
	}})
}

// End folds the run's outputs into the profile.
func (r *BacRecorder) End() {
	units := 2 * r.depth
	if r.sim == nil {
		r.sim, r.volatility = make([][]float64, units), make([]float64, units)
		for u := range r.sim {
			r.sim[u] = make([]float64, r.steps*r.steps)
		}
	}
	for u := range units {
		outs := r.outputs[unitKey{u / 2, model.Sublayer(u % 2)}]
		if len(outs) != r.steps {
			continue
		}
		var vol float64
		for i := range outs {
			for j := range outs {
				dot, ni, nj, l1 := 0.0, 0.0, 0.0, 0.0
				for k, a := range outs[i] {
					b := float64(outs[j][k])
					dot, ni, nj = dot+float64(a)*b, ni+float64(a)*float64(a), nj+b*b
					l1 += math.Abs(float64(a) - b)
				}
				r.sim[u][i*r.steps+j] += dot / math.Max(math.Sqrt(ni*nj), 1e-30)
				if i < j {
					vol += l1 / float64(len(outs[i]))
				}
			}
		}
		r.volatility[u] += vol / float64(max(1, r.steps*(r.steps-1)/2))
	}
	r.outputs = nil
	r.runs++
}

// Calibration is the profile averaged over the runs, as BacCalibration writes it.
func (r *BacRecorder) Calibration() ([]float64, error) {
	if r.runs == 0 {
		return nil, fmt.Errorf("stepcache: bac: nothing recorded")
	}
	sim := make([][]float64, len(r.sim))
	vol := make([]float64, len(r.volatility))
	for u := range sim {
		sim[u] = make([]float64, len(r.sim[u]))
		for i, v := range r.sim[u] {
			sim[u][i] = v / float64(r.runs)
		}
		vol[u] = r.volatility[u] / float64(r.runs)
	}
	return BacCalibration(r.steps, sim, vol), nil
}
