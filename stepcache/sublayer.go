package stepcache

import (
	"math"

	"github.com/cachetlab/cachet/model"
)

// forecaster predicts a sublayer's pre-gate output at a cached step from what it stored at full steps.
type forecaster interface {
	// full records the value computed at step (the forecaster takes ownership of v).
	full(step int, v *model.Feature) error
	// predict returns a new Feature for step; reused reports a plain reuse (FORA) rather than a forecast.
	predict(step int) (f *model.Feature, reused bool, err error)
	bytes() int64
	drop()
}

type unitKey struct {
	block int
	kind  model.Sublayer
}

// sublayerPolicy runs full steps on a schedule and, between them, supplies every block's attention and MLP
// outputs from per-unit forecasters (FORA, TaylorSeer). Guidance's two branches share the batch and so the
// cache, as in the reference implementations.
type sublayerPolicy struct {
	ledger
	isFull func(step int) bool
	newF   func(key unitKey) forecaster
	units  map[unitKey]forecaster
}

func (p *sublayerPolicy) Begin(s model.Schedule) error {
	p.steps = s.Steps
	p.units = map[unitKey]forecaster{}
	return nil
}

func (p *sublayerPolicy) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	full := p.isFull(step)
	hooks := &model.Hooks{Sublayer: func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		key := unitKey{block, kind}
		f, ok := p.units[key]
		if !ok {
			f = p.newF(key)
			p.units[key] = f
		}
		if full || !ok {
			v, err := compute(nil)
			if err != nil {
				return nil, err
			}
			keep, err := v.Clone()
			if err != nil {
				return nil, err
			}
			before := f.bytes()
			if err := f.full(step, keep); err != nil {
				return nil, err
			}
			p.hold(f.bytes() - before)
			p.computed++
			return v.Clone()
		}
		before := f.bytes()
		out, reused, err := f.predict(step)
		if err != nil {
			return nil, err
		}
		p.hold(f.bytes() - before) // forecasters with a rolling window grow on predictions too
		if reused {
			p.reused++
		} else {
			p.forecast++
		}
		return out, nil
	}}
	return eval(hooks)
}

func (p *sublayerPolicy) End() {
	for _, f := range p.units {
		f.drop()
	}
	p.units = nil
	p.held = 0
}

// taylor keeps finite-difference derivatives D0…Dm of a unit's output at full steps (TaylorSeer):
// D0 = F, D(i+1) = (D(i)_new − D(i)_old)/Δ with Δ the step gap between the last two full steps, and
// forecasts F̂(k) = Σ_i D(i)·k^i/i! k steps past the last full step. Order 0 is FORA's plain reuse.
type taylor struct {
	order    int
	d        []*model.Feature
	lastFull int
}

func (t *taylor) full(step int, v *model.Feature) error {
	next := []*model.Feature{v}
	if len(t.d) > 0 {
		gap := float64(step - t.lastFull)
		for i := 0; i < t.order && i < len(t.d); i++ {
			diff, err := model.Combine([]float64{1 / gap, -1 / gap}, []*model.Feature{next[i], t.d[i]})
			if err != nil {
				return err
			}
			next = append(next, diff)
		}
	}
	t.drop()
	t.d, t.lastFull = next, step
	return nil
}

func (t *taylor) predict(step int) (*model.Feature, bool, error) {
	if t.order == 0 || len(t.d) == 1 {
		f, err := t.d[0].Clone()
		return f, true, err
	}
	k := float64(step - t.lastFull)
	coeffs := make([]float64, len(t.d))
	fact := 1.0
	for i := range t.d {
		if i > 0 {
			fact *= float64(i)
		}
		coeffs[i] = math.Pow(k, float64(i)) / fact
	}
	f, err := model.Combine(coeffs, t.d)
	return f, false, err
}

func (t *taylor) bytes() int64 { return bytesOf(t.d) }

func (t *taylor) drop() {
	dropAll(t.d)
	t.d = nil
}

func init() {
	register("fora", spec{
		help: "FORA: recompute every N steps, reuse attention and MLP outputs in between",
		params: map[string]param{
			"interval": {def: 3, min: 1, max: 50, integer: true, help: "steps between full computations"},
		},
		build: func(p map[string]float64, _ int) Policy {
			n := int(p["interval"])
			return &sublayerPolicy{ledger: ledger{name: "fora"}, isFull: func(s int) bool { return s%n == 0 },
				newF: func(unitKey) forecaster { return &taylor{order: 0} }}
		},
	})
	register("taylorseer", spec{
		help: "TaylorSeer: Taylor-series forecasts of attention and MLP outputs from finite differences at full steps",
		params: map[string]param{
			"interval": {def: 4, min: 1, max: 50, integer: true, help: "steps between full computations (N)"},
			"order":    {def: 4, min: 0, max: 6, integer: true, help: "Taylor order (m)"},
			"warmup":   {def: 2, min: 0, max: 50, integer: true, help: "first steps always computed (first_enhance)"},
		},
		build: func(p map[string]float64, _ int) Policy {
			n, m, w := int(p["interval"]), int(p["order"]), int(p["warmup"])
			return &sublayerPolicy{ledger: ledger{name: "taylorseer"},
				isFull: func(s int) bool { return s < w || (s-w)%n == 0 },
				newF:   func(unitKey) forecaster { return &taylor{order: m} }}
		},
	})
}
