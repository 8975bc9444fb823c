package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// profilingDiT is ProfilingDiT (docs/step-caching.md): blocks are profiled offline by where their attention
// goes — to the foreground (the tokens the model redraws most) or to the background. The foreground-focused
// blocks run every step; the background-focused ones run every interval steps from start on, and in between
// add the residual (output − input) they kept at their last run, as the reference's delta cache does.
type profilingDiT struct {
	ledger
	interval, start int
	background      []bool // per block
	depth           int
	deltas          []*model.Feature
}

func (c *profilingDiT) Begin(s model.Schedule) error {
	if len(c.background) != c.depth {
		return cachet.Errorf(cachet.CodeInvalidArgument, "profilingdit's block profile has %d blocks, the model %d; run 'cachet calibrate profilingdit' for these weights", len(c.background), c.depth)
	}
	c.steps = s.Steps
	c.deltas = make([]*model.Feature, len(c.background))
	return nil
}

func (c *profilingDiT) End() {
	for i := range c.deltas {
		c.swap(&c.deltas[i], nil)
	}
}

func (c *profilingDiT) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	compute := step < c.start || (step-c.start)%c.interval == 0
	return eval(&model.Hooks{Stack: func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		var owned []*model.Feature
		defer func() {
			for _, f := range owned {
				f.Drop()
			}
		}()
		cur := x
		for i, bg := range c.background {
			if bg && !compute && c.deltas[i] != nil {
				next, err := cur.Add(c.deltas[i])
				if err != nil {
					return nil, err
				}
				owned = append(owned, next)
				cur = next
				c.reused++
				continue
			}
			out, err := run(i, i+1, cur)
			if err != nil {
				return nil, err
			}
			if bg {
				d, err := out.Sub(cur)
				if err != nil {
					return nil, err
				}
				c.swap(&c.deltas[i], d)
			}
			cur = out
			c.computed++
		}
		return cur.Clone()
	}})
}

// backgroundBlocks marks the share of blocks whose foreground score is lowest.
func backgroundBlocks(scores []float64, share float64) []bool {
	order := ranked(len(scores), func(i int) float64 { return -scores[i] }) // lowest first
	out := make([]bool, len(scores))
	for _, i := range order[:int(math.Round(share*float64(len(scores))))] {
		out[i] = true
	}
	return out
}

// ProfilingRecorder is a StepCache that computes every step and records, per block, how much of the
// attention goes to the foreground: the quarter of each image's tokens whose output patch changed most over
// the trajectory. Scores gives the profile `cachet calibrate profilingdit` saves.
type ProfilingRecorder struct {
	received [][][]float32 // per step, per block: [rows·T]
	outputs  [][]float32   // per step: [N·C·H·W]
	shape    []int64
	tokens   int
}

// NewProfilingRecorder makes a recorder.
func NewProfilingRecorder() *ProfilingRecorder { return &ProfilingRecorder{} }

func (r *ProfilingRecorder) Begin(model.Schedule) error { r.received, r.outputs = nil, nil; return nil }
func (r *ProfilingRecorder) End()                       {}

func (r *ProfilingRecorder) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	var blocks [][]float32
	out, err := eval(&model.Hooks{AttentionReceived: func(block int, received *model.Feature) error {
		shape, err := received.Shape()
		if err != nil || len(shape) != 2 {
			return fmt.Errorf("stepcache: attention received of shape %v: %v", shape, err)
		}
		r.tokens = int(shape[1])
		v, err := received.Values()
		for len(blocks) <= block {
			blocks = append(blocks, nil)
		}
		blocks[block] = v
		return err
	}})
	if err != nil {
		return nil, err
	}
	if r.shape, err = out.Shape(); err != nil {
		return nil, err
	}
	v, err := out.Values()
	if err != nil {
		return nil, err
	}
	r.received, r.outputs = append(r.received, blocks), append(r.outputs, v)
	return out, nil
}

// Scores is each block's foreground score: the share of its attention the foreground tokens receive,
// over their share of the tokens (1: no preference), averaged over steps and images.
func (r *ProfilingRecorder) Scores() ([]float64, error) {
	if len(r.outputs) < 2 || len(r.shape) != 4 || len(r.received[0]) == 0 {
		return nil, fmt.Errorf("stepcache: profiling needs a run of at least two steps")
	}
	n, ch, side := int(r.shape[0]), int(r.shape[1]), int(r.shape[2])
	tokens := r.tokens
	grid, _, err := tokenGrid(tokens, side)
	if err != nil {
		return nil, err
	}
	activity := make([]float64, n*tokens)
	for s := 1; s < len(r.outputs); s++ {
		addPatchChange(activity, r.outputs[s-1], r.outputs[s], n, ch, side, grid)
	}
	fg := make([]bool, n*tokens)
	k := max(1, tokens/4)
	for img := range n {
		a := activity[img*tokens : (img+1)*tokens]
		for _, t := range ranked(tokens, func(i int) float64 { return a[i] })[:k] {
			fg[img*tokens+t] = true
		}
	}
	depth := len(r.received[0])
	scores := make([]float64, depth)
	for b := range depth {
		var sum float64
		var count int
		for _, step := range r.received {
			rows := len(step[b]) / tokens
			for row := range rows {
				var onFG, all float64
				for t := range tokens {
					v := float64(step[b][row*tokens+t])
					all += v
					if fg[(row%n)*tokens+t] {
						onFG += v
					}
				}
				if all > 0 {
					sum += onFG / all * float64(tokens) / float64(k)
					count++
				}
			}
		}
		scores[b] = sum / float64(max(count, 1))
	}
	return scores, nil
}

func init() {
	register("profilingdit", spec{
		help: "ProfilingDiT: blocks profiled as background-focused reuse their residual between full steps; foreground-focused blocks run every step",
		params: map[string]param{
			"interval": {def: 4, min: 1, max: 50, integer: true, help: "steps between runs of the background-focused blocks (step_interval)"},
			"start":    {def: 2, min: 0, max: 50, integer: true, help: "first steps that run every block (step_start)"},
			"share":    {def: 0.5, min: 0, max: 1, help: "share of the blocks treated as background-focused (lowest foreground scores)"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy profilingdit needs the model's block profile (run 'cachet calibrate profilingdit')")
			}
			return &profilingDiT{ledger: ledger{name: "profilingdit"}, interval: int(p["interval"]), start: int(p["start"]),
				background: backgroundBlocks(calibration, p["share"]), depth: depth}, nil
		},
	})
}
