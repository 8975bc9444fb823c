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

// The recorder's score is the share of a block's attention on the foreground (the quarter of tokens whose
// output changed most) over the foreground's share of tokens: 1 for a block attending evenly, 4 for one
// attending to the foreground alone.
func TestProfilingRecorderScoresForegroundAttention(t *testing.T) {
	const side, patch, tokens = 8, 2, 16
	r := stepcache.NewProfilingRecorder()
	if err := r.Begin(model.Schedule{Steps: 3}); err != nil {
		t.Fatal(err)
	}
	for step := range 3 {
		out, err := r.Eval(step, func(h *model.Hooks) (*model.Feature, error) {
			even, focused := make([]float32, tokens), make([]float32, tokens)
			for i := range tokens {
				even[i] = 1
				if i >= 12 { // tokens 12–15 change most below: the foreground
					focused[i] = 4
				}
			}
			for b, v := range [][]float32{focused, even} {
				f, err := model.NewFeature(v, []int64{1, tokens}, model.CPU)
				if err != nil {
					return nil, err
				}
				err = h.AttentionReceived(b, f)
				f.Drop()
				if err != nil {
					return nil, err
				}
			}
			img := make([]float32, side*side)
			for y := range side {
				for x := range side {
					tok := (y/patch)*(side/patch) + x/patch
					img[y*side+x] = float32(step * tok * tok) // later tokens change faster
				}
			}
			return model.NewFeature(img, []int64{1, 1, side, side}, model.CPU)
		})
		if err != nil {
			t.Fatal(err)
		}
		out.Drop()
	}
	scores, err := r.Scores()
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 2 || math.Abs(scores[0]-4) > 1e-6 || math.Abs(scores[1]-1) > 1e-6 {
		t.Errorf("scores %v, want [4 1]", scores)
	}
}
