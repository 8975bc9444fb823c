package stepcache

import (
	"github.com/cachetlab/cachet/model"
)

// dbCache is DBCache (cache-dit's dual-block cache), with First-Block Cache as its Fn = 1, Bn = 0 case:
// the first Fn blocks always run; when the residual they produce changed little since the last full step
// (diff = mean|r_t − r_ref| / mean|r_ref| < threshold) the middle blocks are skipped by adding the residual
// they produced then; the last Bn blocks always run. The reference residual is refreshed only on full
// steps, so small changes cannot accumulate unnoticed. Warm-up steps, a cap on cached steps in a row and on
// cached steps in all bound the drift.
type dbCache struct {
	ledger
	threshold              float64
	front, back, depth     int
	warmup                 int
	maxConsecutive, maxAll int // 0 = no cap
	consecutive, cachedAll int
	refR, midR             *model.Feature // front residual and middle residual at the last full step
}

func (c *dbCache) Begin(s model.Schedule) error { c.steps = s.Steps; return nil }

func (c *dbCache) mayCache(step int) bool {
	return c.midR != nil && c.threshold > 0 && step >= c.warmup &&
		(c.maxConsecutive == 0 || c.consecutive < c.maxConsecutive) && (c.maxAll == 0 || c.cachedAll < c.maxAll)
}

func (c *dbCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	front, midEnd := c.front, c.depth-c.back
	hooks := &model.Hooks{Stack: func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		hf, err := run(0, front, x)
		if err != nil {
			return nil, err
		}
		c.computed += front
		r, err := hf.Sub(x)
		if err != nil {
			return nil, err
		}
		defer r.Drop()
		var hm *model.Feature
		if c.mayCache(step) {
			diff, err := r.RelL1(c.refR)
			if err != nil {
				return nil, err
			}
			if diff < c.threshold {
				if hm, err = hf.Add(c.midR); err != nil {
					return nil, err
				}
				defer hm.Drop()
				c.reused += midEnd - front
				c.consecutive++
				c.cachedAll++
			}
		}
		if hm == nil {
			if hm, err = run(front, midEnd, hf); err != nil {
				return nil, err
			}
			c.computed += midEnd - front
			c.consecutive = 0
			if err := c.store(r, hm, hf); err != nil {
				return nil, err
			}
		}
		out, err := run(midEnd, c.depth, hm)
		if err != nil {
			return nil, err
		}
		c.computed += c.depth - midEnd
		return out.Clone()
	}}
	return eval(hooks)
}

// store keeps the front residual r and the middle residual hm − hf of a full step.
func (c *dbCache) store(r, hm, hf *model.Feature) error {
	mid, err := hm.Sub(hf)
	if err != nil {
		return err
	}
	ref, err := r.Clone()
	if err != nil {
		mid.Drop()
		return err
	}
	c.release()
	c.refR, c.midR = ref, mid
	c.hold(ref.Bytes() + mid.Bytes())
	return nil
}

func (c *dbCache) release() {
	if c.refR != nil {
		c.hold(-c.refR.Bytes() - c.midR.Bytes())
		c.refR.Drop()
		c.midR.Drop()
		c.refR, c.midR = nil, nil
	}
}

func (c *dbCache) End() { c.release() }

func init() {
	register("fbcache", spec{
		help: "First-Block Cache: skip the blocks after the first while its residual barely changes",
		params: map[string]param{
			"threshold": {def: 0.05, min: 0, max: 1, help: "relative L1 change of block 0's residual below which the rest is reused (0 = never)"},
			"warmup":    {def: 1, min: 0, max: 50, integer: true, help: "first steps always computed"},
		},
		build: func(p map[string]float64, depth int) Policy {
			return &dbCache{ledger: ledger{name: "fbcache"}, threshold: p["threshold"], front: 1, back: 0,
				depth: depth, warmup: int(p["warmup"])}
		},
	})
	register("dbcache", spec{
		help: "DBCache: Fn front blocks always run and decide; the middle is reused while their residual barely changes; Bn back blocks always run",
		params: map[string]param{
			"fn":              {def: 8, min: 1, max: 64, integer: true, help: "front blocks (clamped to depth−1)"},
			"bn":              {def: 0, min: 0, max: 64, integer: true, help: "back blocks always computed"},
			"threshold":       {def: 0.08, min: 0, max: 1, help: "relative L1 change below which the middle is reused (0 = never)"},
			"warmup":          {def: 8, min: 0, max: 100, integer: true, help: "first steps always computed"},
			"max_consecutive": {def: 0, min: 0, max: 100, integer: true, help: "cached steps in a row before a full one (0 = no cap)"},
			"max_cached":      {def: 0, min: 0, max: 1000, integer: true, help: "cached steps per request (0 = no cap)"},
		},
		build: func(p map[string]float64, depth int) Policy {
			fn := min(int(p["fn"]), depth-1)
			bn := min(int(p["bn"]), depth-fn)
			return &dbCache{ledger: ledger{name: "dbcache"}, threshold: p["threshold"], front: max(fn, 1), back: bn,
				depth: depth, warmup: int(p["warmup"]), maxConsecutive: int(p["max_consecutive"]), maxAll: int(p["max_cached"])}
		},
	})
}
