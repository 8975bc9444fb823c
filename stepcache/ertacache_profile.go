package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet/model"
)

// ErtaRecorder calibrates ERTACache for one step count. Its first run computes every step and measures the
// block-stack residual's ℓ1rel ‖r_j − r_i‖₁/‖r_i‖₁ between every two steps j < i; walking those at the
// threshold picks the reused steps. Later runs follow that pick and at each reused step also compute the
// true output v: they fit the step's error model ε = ṽ − v ≈ a·ṽ + b by least squares and its
// φ = clip(1 − ‖ṽ − v‖₁ / ‖v − v_prev‖₁, 0, 1).
type ErtaRecorder struct {
	threshold float64
	depth     int
	steps     int
	times     []float64
	residuals []*model.Feature // the first run's, per step
	rel       []float64
	reuse     []bool
	walked    bool
	residual  *model.Feature
	prevTrue  []float32
	// per step, over the fitting runs: least-squares sums and φ's sum and count
	n, sx, sy, sxx, sxy, phiSum []float64
	phiN                        []int
	l                           ledger
}

// NewErtaRecorder makes a recorder that marks steps reusable below threshold.
func NewErtaRecorder(depth int, threshold float64) *ErtaRecorder {
	return &ErtaRecorder{threshold: threshold, depth: depth, l: ledger{name: "ertacache-recorder"}}
}

func (r *ErtaRecorder) Begin(s model.Schedule) error {
	if r.reuse == nil {
		r.steps, r.times = s.Steps, s.Times
		r.reuse = make([]bool, s.Steps)
		for _, p := range []*[]float64{&r.n, &r.sx, &r.sy, &r.sxx, &r.sxy, &r.phiSum} {
			*p = make([]float64, s.Steps)
		}
		r.phiN = make([]int, s.Steps)
	} else if s.Steps != r.steps {
		return fmt.Errorf("stepcache: ertacache recorder: a run of %d steps after one of %d", s.Steps, r.steps)
	}
	r.prevTrue = nil
	return nil
}

func (r *ErtaRecorder) End() {
	r.l.swap(&r.residual, nil)
	if !r.walked {
		r.walked = true
		r.rel = make([]float64, r.steps*r.steps)
		for i := range r.residuals {
			for j := range i {
				if r.residuals[j] != nil && r.residuals[i] != nil {
					r.rel[j*r.steps+i], _ = r.residuals[j].RelL1(r.residuals[i])
				}
			}
		}
		dropAll(r.residuals)
		r.residuals = nil
		r.reuse = ertaProfile{times: r.times, rel: r.rel}.walk(r.threshold)
	}
}

func (r *ErtaRecorder) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	if !r.walked {
		return r.walk(step, eval)
	}
	if !r.reuse[step] || r.residual == nil {
		v, err := eval(&model.Hooks{Stack: r.l.residualStack(r.depth, &r.residual, func() bool { return false })})
		if err == nil {
			r.prevTrue, err = v.Values()
		}
		return v, err
	}
	truth, err := eval(nil)
	if err != nil {
		return nil, err
	}
	cached, err := eval(&model.Hooks{Stack: r.l.residualStack(r.depth, &r.residual, func() bool { return true })})
	if err != nil {
		return nil, err
	}
	v, err := truth.Values()
	if err != nil {
		return nil, err
	}
	vc, err := cached.Values()
	if err != nil {
		return nil, err
	}
	var n, sx, sy, sxx, sxy, errL1, change float64
	for i := range v {
		x, e := float64(vc[i]), float64(vc[i]-v[i])
		n, sx, sy, sxx, sxy = n+1, sx+x, sy+e, sxx+x*x, sxy+x*e
		errL1 += math.Abs(e)
		if r.prevTrue != nil {
			change += math.Abs(float64(v[i] - r.prevTrue[i]))
		}
	}
	r.n[step] += n
	r.sx[step] += sx
	r.sy[step] += sy
	r.sxx[step] += sxx
	r.sxy[step] += sxy
	if change > 0 {
		r.phiSum[step] += min(1, max(0, 1-errL1/change))
		r.phiN[step]++
	}
	r.prevTrue = v
	// The run goes on from this run's own rectified output, as the policy's would from the fitted one.
	a, b := leastSquares(n, sx, sy, sxx, sxy)
	return cached.Affine(1-a, -b)
}

// walk computes step and keeps its residual.
func (r *ErtaRecorder) walk(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(&model.Hooks{Stack: residualObserver(r.depth, func(res *model.Feature) error {
		for len(r.residuals) <= step {
			r.residuals = append(r.residuals, nil)
		}
		r.residuals[step] = res
		return nil
	})})
}

// leastSquares fits y ≈ a·x + b from the sums.
func leastSquares(n, sx, sy, sxx, sxy float64) (a, b float64) {
	if n == 0 {
		return 0, 0
	}
	if den := n*sxx - sx*sx; den > 0 {
		a = (n*sxy - sx*sy) / den
	}
	return a, (sy - a*sx) / n
}

// Record is the calibration record (see ertaProfiles) for this step count: the walk's schedule, and each
// reused step's φ (1 where no run measured it) and error model.
func (r *ErtaRecorder) Record() ([]float64, error) {
	if !r.walked {
		return nil, fmt.Errorf("stepcache: ertacache recorder: nothing recorded")
	}
	p := ertaProfile{times: r.times, rel: r.rel, phi: make([]float64, r.steps), a: make([]float64, r.steps), b: make([]float64, r.steps)}
	for i := range r.steps {
		p.phi[i] = 1
		if r.phiN[i] > 0 {
			p.phi[i] = r.phiSum[i] / float64(r.phiN[i])
		}
		p.a[i], p.b[i] = leastSquares(r.n[i], r.sx[i], r.sy[i], r.sxx[i], r.sxy[i])
	}
	return p.record(), nil
}

// Reused counts the steps the walk marked reusable.
func (r *ErtaRecorder) Reused() int {
	n := 0
	for _, v := range r.reuse {
		if v {
			n++
		}
	}
	return n
}
