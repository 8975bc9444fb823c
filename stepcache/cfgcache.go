package stepcache

import (
	"fmt"

	"github.com/cachetlab/cachet/model"
)

// branchReuse is CFG-branch reuse (docs/step-caching.md): guidance's unconditional and negative predictions
// are computed every interval steps (and through the warm-up); in between each is the step's conditional
// prediction plus the difference between the two kept from the last step that computed both, so a
// skipped step runs the model on the conditional rows alone — half the batch under classifier-free
// guidance. It composes with any step count and with the other axes through its hooks.
type branchReuse struct {
	due          func(step int) bool // whether step computes every branch
	order        int                 // 1: extrapolate the difference linearly from the last two computed
	deltas, prev map[model.Branch]*model.Feature
	at, prevAt   int         // steps of deltas and prev
	held         func(int64) // the owning policy's memory account
	skipping     bool        // the current step runs the conditional prediction alone
}

func newBranchReuse(due func(step int) bool, order int, held func(int64)) *branchReuse {
	return &branchReuse{due: due, order: order, deltas: map[model.Branch]*model.Feature{},
		prev: map[model.Branch]*model.Feature{}, held: held}
}

// hooks are step's branch seams: skip when the step is not due and a difference was kept.
func (r *branchReuse) hooks(step int) *model.Branches {
	r.skipping = false
	return &model.Branches{
		Skip: func() bool {
			r.skipping = !r.due(step) && len(r.deltas) > 0
			return r.skipping
		},
		Observe: func(b model.Branch, cond, other *model.Feature) error {
			d, err := other.Sub(cond)
			if err != nil {
				return err
			}
			if old := r.prev[b]; old != nil {
				r.held(-old.Bytes())
				old.Drop()
			}
			r.prev[b], r.deltas[b] = r.deltas[b], d
			r.prevAt, r.at = r.at, step
			r.held(d.Bytes())
			return nil
		},
		Supply: func(b model.Branch, cond *model.Feature) (*model.Feature, error) {
			d, ok := r.deltas[b]
			if !ok {
				return nil, fmt.Errorf("cfg reuse: the %s branch was never computed, so there is nothing to reuse", b)
			}
			if p := r.prev[b]; r.order >= 1 && p != nil && r.at > r.prevAt {
				k := float64(step-r.at) / float64(r.at-r.prevAt)
				return model.Combine([]float64{1, 1 + k, -k}, []*model.Feature{cond, d, p})
			}
			return cond.Add(d)
		},
	}
}

func (r *branchReuse) drop() {
	for _, m := range []map[model.Branch]*model.Feature{r.deltas, r.prev} {
		for b, d := range m {
			if d != nil {
				r.held(-d.Bytes())
				d.Drop()
			}
			delete(m, b)
		}
	}
}

// cfgCache is CFG-branch reuse on its own: every step computes the conditional prediction.
type cfgCache struct {
	ledger
	reuse                   *branchReuse
	interval, warmup, order int
}

func (c *cfgCache) Begin(s model.Schedule) error {
	c.steps = s.Steps
	due := func(step int) bool { return step < c.warmup || (step-c.warmup)%c.interval == 0 }
	c.reuse = newBranchReuse(due, c.order, c.hold)
	return nil
}

func (c *cfgCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	out, err := eval(&model.Hooks{Branches: c.reuse.hooks(step)})
	if c.reuse.skipping {
		c.reused++ // the branches of this step
	} else {
		c.computed++
	}
	return out, err
}

func (c *cfgCache) End() { c.reuse.drop() }

func init() {
	register("cfgcache", spec{
		help: "CFG-branch reuse: the unconditional and negative branches computed every N steps, their difference to the conditional prediction reused in between",
		params: map[string]param{
			"interval": {def: 2, min: 1, max: 50, integer: true, help: "steps between computations of the guidance branches"},
			"warmup":   {def: 1, min: 0, max: 50, integer: true, help: "first steps that compute every branch"},
			"order":    {def: 0, min: 0, max: 1, integer: true, help: "0 reuses the difference; 1 extrapolates it from the last two computed"},
		},
		build: func(p map[string]float64, _ int) Policy {
			return &cfgCache{ledger: ledger{name: "cfgcache"}, interval: int(p["interval"]), warmup: int(p["warmup"]), order: int(p["order"])}
		},
	})
}
