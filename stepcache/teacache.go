package stepcache

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// teaCache is TeaCache: the relative L1 change of block 0's timestep-modulated input between steps,
// rescaled by a polynomial fitted offline for the model (the change it predicts in the output), is
// accumulated; while the sum stays below threshold the whole stack is skipped by adding the residual of
// the last computed step. The first and last steps always compute.
type teaCache struct {
	ledger
	threshold float64
	poly      []float64 // coefficients, highest degree first
	depth     int
	acc       float64
	prevMod   *model.Feature
	residual  *model.Feature
}

func (c *teaCache) Begin(s model.Schedule) error { c.steps = s.Steps; c.acc = 0; return nil }

func (c *teaCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	compute := true
	hooks := &model.Hooks{
		Probe: func(mod0 *model.Feature) error {
			defer func() { // keep this step's modulated input for the next step's indicator
				if keep, err := mod0.Clone(); err == nil {
					c.swap(&c.prevMod, keep)
				}
			}()
			if step == 0 || step == c.steps-1 || c.prevMod == nil || c.residual == nil {
				c.acc = 0
				return nil
			}
			rel, err := mod0.RelL1(c.prevMod)
			if err != nil {
				return err
			}
			// A fitted polynomial means something only over the changes it was fitted on (a 50-step schedule):
			// a negative or undefined value says this change lies outside them (fewer steps take bigger
			// ones), and the step computes rather than reusing on a guess.
			rescaled := polyval(c.poly, rel)
			if math.IsNaN(rescaled) || rescaled < 0 {
				rescaled = math.Inf(1)
			}
			c.acc += rescaled
			if c.threshold > 0 && c.acc < c.threshold {
				compute = false
			} else {
				c.acc = 0
			}
			return nil
		},
		Stack: c.residualStack(c.depth, &c.residual, func() bool { return !compute }),
	}
	return eval(hooks)
}

func (c *teaCache) End() {
	c.swap(&c.prevMod, nil)
	c.swap(&c.residual, nil)
}

func polyval(coeffs []float64, x float64) float64 {
	y := 0.0
	for _, c := range coeffs {
		y = y*x + c
	}
	return y
}

// FitPolynomial fits y ≈ Σ c_i x^(deg−i) by least squares and returns the coefficients highest degree
// first (numpy.polyfit's convention, as TeaCache's calibration uses).
func FitPolynomial(x, y []float64, deg int) ([]float64, error) {
	if len(x) != len(y) || len(x) <= deg {
		return nil, fmt.Errorf("stepcache: fitting a degree-%d polynomial needs more than %d points (got %d)", deg, deg, len(x))
	}
	// Fit in u = x/scale (changes are small numbers, and their high powers would make the Vandermonde
	// matrix numerically singular), then map the coefficients back to x.
	scale := 0.0
	for _, xv := range x {
		scale = max(scale, math.Abs(xv))
	}
	if scale == 0 {
		return nil, fmt.Errorf("stepcache: polynomial fit: every x is 0")
	}
	a := mat.NewDense(len(x), deg+1, nil)
	for i, xv := range x {
		xv /= scale
		p := 1.0
		for j := deg; j >= 0; j-- {
			a.Set(i, j, p)
			p *= xv
		}
	}
	var qr mat.QR
	qr.Factorize(a)
	var sol mat.Dense
	if err := qr.SolveTo(&sol, false, mat.NewDense(len(y), 1, y)); err != nil {
		return nil, fmt.Errorf("stepcache: polynomial fit: %w", err)
	}
	out := make([]float64, deg+1)
	for j := range out { // column j holds u^(deg−j)
		out[j] = sol.At(j, 0) / math.Pow(scale, float64(deg-j))
	}
	return out, nil
}

// TeaRecorder computes every step and records, between consecutive steps, the relative L1 change of block
// 0's modulated input and of the stack's residual: the pairs TeaCache's polynomial is fitted to.
type TeaRecorder struct {
	depth          int
	prevMod, prevR *model.Feature
	In, Out        []float64
}

// NewTeaRecorder records on a model with depth blocks.
func NewTeaRecorder(depth int) *TeaRecorder { return &TeaRecorder{depth: depth} }

func (r *TeaRecorder) Begin(model.Schedule) error { return nil }

func (r *TeaRecorder) End() {
	for _, f := range []*model.Feature{r.prevMod, r.prevR} {
		if f != nil {
			f.Drop()
		}
	}
	r.prevMod, r.prevR = nil, nil
}

func (r *TeaRecorder) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	var in float64
	hooks := &model.Hooks{
		Probe: func(mod0 *model.Feature) error {
			if r.prevMod != nil {
				var err error
				if in, err = mod0.RelL1(r.prevMod); err != nil {
					return err
				}
				r.prevMod.Drop()
			}
			var err error
			r.prevMod, err = mod0.Clone()
			return err
		},
		Stack: residualObserver(r.depth, func(res *model.Feature) error {
			if r.prevR != nil {
				rel, err := res.RelL1(r.prevR)
				if err != nil {
					res.Drop()
					return err
				}
				r.In, r.Out = append(r.In, in), append(r.Out, rel)
				r.prevR.Drop()
			}
			r.prevR = res
			return nil
		}),
	}
	return eval(hooks)
}

func init() {
	register("teacache", spec{
		help: "TeaCache: skip the stack while the accumulated, polynomial-rescaled change of block 0's modulated input stays small",
		params: map[string]param{
			"threshold": {def: 0.1, min: 0, max: 10, help: "accumulated rescaled change below which the cached residual is reused (0 = never)"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) < 2 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy teacache needs the model's calibration (run 'cachet calibrate teacache')")
			}
			return &teaCache{ledger: ledger{name: "teacache"}, threshold: p["threshold"], poly: calibration, depth: depth}, nil
		},
	})
}
