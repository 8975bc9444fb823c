package stepcache_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// ProfilingDiT runs the foreground-focused blocks every step and, between full steps, adds the residual
// the background-focused blocks (the lowest profile scores) left at their last run.
func TestProfilingDiTReusesTheBackgroundBlocksResiduals(t *testing.T) {
	scores := []float64{0.9, 1.2, 0.8, 1.1} // blocks 0 and 2 are background-focused at share 0.5
	p, err := stepcache.New(stepcache.Config{Name: "profilingdit", Params: map[string]float64{"interval": 3, "start": 1, "share": 0.5},
		Calibration: scores}, len(scores))
	if err != nil {
		t.Fatal(err)
	}
	residual := func(block, step int) float64 { return float64(10*block + step) }
	if err := p.Begin(model.Schedule{Steps: 8}); err != nil {
		t.Fatal(err)
	}
	defer p.End()
	lastFull := 0
	for step := range 8 {
		full := step < 1 || (step-1)%3 == 0
		if full {
			lastFull = step
		}
		ran := map[int]bool{}
		out, err := p.Eval(step, func(h *model.Hooks) (*model.Feature, error) {
			x, err := model.NewFeature([]float32{0}, []int64{1}, model.CPU)
			if err != nil {
				return nil, err
			}
			defer x.Drop()
			var made []*model.Feature
			defer func() {
				for _, f := range made {
					f.Drop()
				}
			}()
			return h.Stack(x, func(from, to int, in *model.Feature) (*model.Feature, error) {
				ran[from] = true
				d, err := model.NewFeature([]float32{float32(residual(from, step))}, []int64{1}, model.CPU)
				if err != nil {
					return nil, err
				}
				defer d.Drop()
				f, err := in.Add(d)
				made = append(made, f)
				return f, err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		v, err := out.Values()
		out.Drop()
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for b := range scores {
			bg := b == 0 || b == 2
			if ran[b] == (bg && !full) {
				t.Errorf("step %d block %d: ran %v", step, b, ran[b])
			}
			if bg && !full {
				want += residual(b, lastFull)
			} else {
				want += residual(b, step)
			}
		}
		if math.Abs(float64(v[0])-want) > 1e-4 {
			t.Errorf("step %d: output %v, want %v", step, v[0], want)
		}
	}
}
