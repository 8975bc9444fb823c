package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// magCache is MagCache: the magnitude of the block stack's residual r_t = stack(x) − x changes between steps
// by a ratio γ_t that is nearly the same for every prompt, so it is calibrated once per model. At inference
// the accumulated ratio Π γ and the accumulated error Σ|1 − Π γ| since the last full step decide: while the
// error stays ≤ threshold and at most maxSkips steps were skipped in a row, the cached residual is reused;
// the first retention·steps steps always compute. Norms are of the whole residual (the reference averages
// per-token norms; for one batch the two agree to first order).
type magCache struct {
	ledger
	threshold float64
	maxSkips  int
	retention float64
	depth     int
	gammas    []float64 // calibrated ratios, resampled to this request's steps
	profile   []float64
	ratio     float64
	err       float64
	skipped   int
	residual  *model.Feature
}

func (c *magCache) Begin(s model.Schedule) error {
	c.steps = s.Steps
	c.gammas = resample(c.profile, s.Steps)
	c.ratio, c.err, c.skipped = 1, 0, 0
	return nil
}

func (c *magCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	skip := false
	if float64(step) >= c.retention*float64(c.steps) && c.residual != nil {
		c.ratio *= c.gammas[step]
		c.err += math.Abs(1 - c.ratio)
		c.skipped++
		skip = c.threshold > 0 && c.err <= c.threshold && c.skipped <= c.maxSkips
		if !skip {
			c.ratio, c.err, c.skipped = 1, 0, 0
		}
	}
	return eval(&model.Hooks{Stack: c.residualStack(c.depth, &c.residual, func() bool { return skip })})
}

func (c *magCache) End() { c.swap(&c.residual, nil) }

// resample maps a calibrated per-step profile onto n steps by linear interpolation over the trajectory's
// fraction (a profile calibrated at 50 steps serves 20 or 100).
func resample(profile []float64, n int) []float64 {
	out := make([]float64, n)
	if len(profile) == n {
		copy(out, profile)
		return out
	}
	for i := range n {
		pos := 0.0
		if n > 1 {
			pos = float64(i) / float64(n-1) * float64(len(profile)-1)
		}
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(profile)-1)
		w := pos - float64(lo)
		out[i] = profile[lo]*(1-w) + profile[hi]*w
	}
	return out
}

// MagRecorder is a StepCache that computes every step and records the norm of the block stack's residual,
// for CalibrateMagCache.
type MagRecorder struct {
	depth int
	norms []float64
}

// NewMagRecorder records on a model with depth blocks.
func NewMagRecorder(depth int) *MagRecorder { return &MagRecorder{depth: depth} }

func (r *MagRecorder) Begin(s model.Schedule) error {
	r.norms = make([]float64, 0, s.Steps)
	return nil
}
func (r *MagRecorder) End() {}

func (r *MagRecorder) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(&model.Hooks{Stack: residualObserver(r.depth, func(res *model.Feature) error {
		n, err := res.Norm()
		res.Drop()
		r.norms = append(r.norms, n)
		return err
	})})
}

// Ratios returns γ_t = ‖r_t‖ / ‖r_{t−1}‖ for the recorded run (γ_0 = 1).
func (r *MagRecorder) Ratios() []float64 {
	out := make([]float64, len(r.norms))
	for t := range out {
		out[t] = 1
		if t > 0 && r.norms[t-1] > 0 {
			out[t] = r.norms[t] / r.norms[t-1]
		}
	}
	return out
}

// MeanProfiles averages several recorded ratio profiles of the same length (one per calibration run).
func MeanProfiles(profiles [][]float64) ([]float64, error) {
	if len(profiles) == 0 {
		return nil, fmt.Errorf("stepcache: no calibration runs")
	}
	out := make([]float64, len(profiles[0]))
	for _, p := range profiles {
		if len(p) != len(out) {
			return nil, fmt.Errorf("stepcache: calibration runs of different lengths (%d and %d)", len(p), len(out))
		}
		for i, v := range p {
			out[i] += v / float64(len(profiles))
		}
	}
	return out, nil
}

func init() {
	register("magcache", spec{
		help: "MagCache: skip steps while the calibrated residual-magnitude ratios say the accumulated error is small",
		params: map[string]param{
			"threshold": {def: 0.06, min: 0, max: 10, help: "accumulated error allowed before a full step (0 = never skip)"},
			"max_skips": {def: 3, min: 0, max: 50, integer: true, help: "steps skipped in a row at most"},
			"retention": {def: 0.2, min: 0, max: 1, help: "first fraction of steps always computed"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) < 2 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy magcache needs the model's calibration (run 'cachet calibrate magcache')")
			}
			for _, g := range calibration {
				if math.IsNaN(g) || g <= 0 || g > 100 {
					return nil, cachet.Errorf(cachet.CodeInvalidArgument, "magcache calibration holds an invalid ratio %v; recalibrate", g)
				}
			}
			return &magCache{ledger: ledger{name: "magcache"}, threshold: p["threshold"], maxSkips: int(p["max_skips"]),
				retention: p["retention"], depth: depth, profile: calibration}, nil
		},
	})
}
