package stepcache

import (
	"github.com/cachetlab/cachet/model"
)

// fbCache is First-Block Cache: block 0 always runs; when its residual changed little since the last full
// step (diff = mean|r_t − r_ref| / mean|r_ref| < threshold), the remaining blocks are skipped by adding the
// residual they produced at that full step. The reference residual is refreshed only on full steps, as in
// the reference implementation, so small changes cannot accumulate unnoticed.
type fbCache struct {
	ledger
	threshold float64
	warmup    int
	depth     int
	refR1     *model.Feature // block 0's residual at the last full step
	restR     *model.Feature // blocks 1…N−1's residual at the last full step
}

func (c *fbCache) Begin(s model.Schedule) error { c.steps = s.Steps; return nil }

func (c *fbCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	hooks := &model.Hooks{Stack: func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		h1, err := run(0, 1, x)
		if err != nil {
			return nil, err
		}
		c.computed++
		r1, err := h1.Sub(x)
		if err != nil {
			return nil, err
		}
		defer r1.Drop()
		if c.restR != nil && step >= c.warmup && c.threshold > 0 {
			diff, err := r1.RelL1(c.refR1)
			if err != nil {
				return nil, err
			}
			if diff < c.threshold {
				c.reused += c.depth - 1
				return h1.Add(c.restR)
			}
		}
		out, err := run(1, c.depth, h1)
		if err != nil {
			return nil, err
		}
		c.computed += c.depth - 1
		rest, err := out.Sub(h1)
		if err != nil {
			return nil, err
		}
		ref, err := r1.Clone()
		if err != nil {
			rest.Drop()
			return nil, err
		}
		c.release()
		c.refR1, c.restR = ref, rest
		c.hold(ref.Bytes() + rest.Bytes())
		return out.Clone()
	}}
	return eval(hooks)
}

func (c *fbCache) release() {
	if c.refR1 != nil {
		c.hold(-c.refR1.Bytes() - c.restR.Bytes())
		c.refR1.Drop()
		c.restR.Drop()
		c.refR1, c.restR = nil, nil
	}
}

func (c *fbCache) End() { c.release() }

func init() {
	register("fbcache", spec{
		help: "First-Block Cache: skip the blocks after the first while its residual barely changes",
		params: map[string]param{
			"threshold": {def: 0.05, min: 0, max: 1, help: "relative L1 change of block 0's residual below which the rest is reused (0 = never)"},
			"warmup":    {def: 1, min: 0, max: 50, integer: true, help: "first steps always computed"},
		},
		build: func(p map[string]float64, depth int) Policy {
			return &fbCache{ledger: ledger{name: "fbcache"}, threshold: p["threshold"], warmup: int(p["warmup"]), depth: depth}
		},
	})
}
