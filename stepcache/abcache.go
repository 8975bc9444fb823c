package stepcache

import (
	"github.com/cachetlab/cachet/model"
)

// abCache is AB-Cache: it caches the final model output (after guidance) and, on skipped steps, extrapolates
// it from the last k outputs with binomial backward differences (Adams–Bashforth-like): order 2 gives
// v̂ = 2·f0 − f1, order 3 gives 3·f0 − 3·f1 + f2. The sampler then takes its normal step with the true step
// size. The first steps are full, then every interval-th. Whether predicted outputs enter the history is
// a parameter (the reference code's choice is unconfirmed).
type abCache struct {
	ledger
	order, warmup, interval int
	feedPredictions         bool
	history                 []*model.Feature // newest first
}

func (c *abCache) Begin(s model.Schedule) error { c.steps = s.Steps; return nil }

func (c *abCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	full := step < c.warmup || step%c.interval == 0 || len(c.history) < c.order
	var out *model.Feature
	var err error
	if full {
		if out, err = eval(nil); err != nil {
			return nil, err
		}
		c.computed++
	} else {
		coeffs := binomialExtrapolation(c.order)
		if out, err = model.Combine(coeffs, c.history[:c.order]); err != nil {
			return nil, err
		}
		c.forecast++
	}
	if full || c.feedPredictions {
		keep, err := out.Clone()
		if err != nil {
			return nil, err
		}
		c.push(keep)
	}
	return out, nil
}

// binomialExtrapolation gives the coefficients of f0…f(k−1) that extrapolate one step ahead exactly for
// polynomials of degree < k: (−1)^j·C(k, j+1).
func binomialExtrapolation(k int) []float64 {
	coeffs := make([]float64, k)
	binom := 1.0 // C(k, 0)
	for j := range k {
		binom = binom * float64(k-j) / float64(j+1) // C(k, j+1)
		sign := 1.0
		if j%2 == 1 {
			sign = -1
		}
		coeffs[j] = sign * binom
	}
	return coeffs
}

func (c *abCache) push(f *model.Feature) {
	c.history = append([]*model.Feature{f}, c.history...)
	c.hold(f.Bytes())
	for len(c.history) > c.order {
		last := c.history[len(c.history)-1]
		c.hold(-last.Bytes())
		last.Drop()
		c.history = c.history[:len(c.history)-1]
	}
}

func (c *abCache) End() {
	for _, f := range c.history {
		f.Drop()
	}
	c.history, c.held = nil, 0
}

func init() {
	register("abcache", spec{
		help: "AB-Cache: extrapolate the whole model output from the last outputs (binomial differences)",
		params: map[string]param{
			"order":            {def: 2, min: 1, max: 5, integer: true, help: "outputs combined (2: 2f0−f1; 3: 3f0−3f1+f2)"},
			"warmup":           {def: 5, min: 0, max: 100, integer: true, help: "first steps always computed"},
			"interval":         {def: 6, min: 1, max: 100, integer: true, help: "after warm-up, full when step % interval == 0"},
			"feed_predictions": {def: 0, min: 0, max: 1, integer: true, help: "1: predicted outputs enter the history too"},
		},
		build: func(p map[string]float64, _ int) Policy {
			return &abCache{ledger: ledger{name: "abcache"}, order: int(p["order"]), warmup: int(p["warmup"]),
				interval: int(p["interval"]), feedPredictions: p["feed_predictions"] == 1}
		},
	})
}
