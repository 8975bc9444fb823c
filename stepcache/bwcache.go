package stepcache

import (
	"math"

	"github.com/cachetlab/cachet/model"
)

// bwCache is BWCache: on computed steps it compares every block's output with the previous computed step's
// (L1rel_i = ‖h_t,i − h_prev,i‖₁ / ‖h_prev,i‖₁); when the mean over blocks falls below delta, the cached block
// outputs (so the stack's output) are reused for the next R steps (R = reuse·steps), then recomputed. The
// last late·steps steps always compute, where details form.
type bwCache struct {
	ledger
	delta, reuseFrac, lateFrac float64
	depth                      int
	reuseLeft, reuseLen, late  int
	prev                       []*model.Feature // block outputs of the last computed step
}

func (c *bwCache) Begin(s model.Schedule) error {
	c.steps = s.Steps
	c.reuseLen = max(1, int(math.Ceil(c.reuseFrac*float64(s.Steps))))
	c.late = int(math.Ceil(c.lateFrac * float64(s.Steps)))
	return nil
}

func (c *bwCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	forced := step >= c.steps-c.late
	hooks := &model.Hooks{Stack: func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		if c.reuseLeft > 0 && !forced && len(c.prev) == c.depth {
			c.reuseLeft--
			c.reused += c.depth
			return c.prev[c.depth-1].Clone()
		}
		c.reuseLeft = 0
		outs := make([]*model.Feature, c.depth)
		h := x
		var err error
		for b := range c.depth {
			if h, err = run(b, b+1, h); err != nil {
				return nil, err
			}
			if outs[b], err = h.Clone(); err != nil {
				return nil, err
			}
		}
		c.computed += c.depth
		if len(c.prev) == c.depth {
			sum := 0.0
			for b := range c.depth {
				rel, err := outs[b].RelL1(c.prev[b])
				if err != nil {
					return nil, err
				}
				sum += rel
			}
			if sum/float64(c.depth) < c.delta {
				c.reuseLeft = c.reuseLen
			}
		}
		c.replace(outs)
		return h.Clone()
	}}
	return eval(hooks)
}

func (c *bwCache) replace(outs []*model.Feature) {
	c.release()
	for _, f := range outs {
		c.hold(f.Bytes())
	}
	c.prev = outs
}

func (c *bwCache) release() {
	for _, f := range c.prev {
		c.hold(-f.Bytes())
		f.Drop()
	}
	c.prev = nil
}

func (c *bwCache) End() { c.release() }

func init() {
	register("bwcache", spec{
		help: "BWCache: reuse all block outputs for R steps when they changed little between computed steps",
		params: map[string]param{
			"delta": {def: 0.2, min: 0, max: 1, help: "mean relative L1 change below which outputs are reused (0.15 slow, 0.20 mid, 0.25 fast)"},
			"reuse": {def: 0.1, min: 0, max: 1, help: "steps reused after a decision, as a fraction of the steps"},
			"late":  {def: 0.1, min: 0, max: 1, help: "final fraction of steps always computed"},
		},
		build: func(p map[string]float64, depth int) Policy {
			return &bwCache{ledger: ledger{name: "bwcache"}, delta: p["delta"], reuseFrac: p["reuse"], lateFrac: p["late"], depth: depth}
		},
	})
}
