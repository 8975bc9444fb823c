package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet/model"
)

// cachetPolicy is Cachet's own policy (docs/step-caching.md, "Cutting a step's cost"): a full step every
// interval steps; in between, each image recomputes only its fresh tokens — attention queries over every token's
// keys and values, and the MLP — in every block, and the other tokens keep their cached sublayer outputs
// under the current step's gates. Fresh tokens are those whose expected staleness error is largest: the
// rate their output patch changed per step between the last two full steps, times the steps since they
// were computed. On these scenes most tokens are background, whose velocity barely changes.
type cachetPolicy struct {
	ledger
	interval int
	ratio    float64
	depth    int
	units    units
	guidance bool         // reuse guidance's other branches on partial steps
	branches *branchReuse // their differences to the conditional prediction

	images, tokens, grid int // the output's images; tokens per image; tokens per side
	prevOut              []float32
	rate                 []float64 // per image token: mean |Δv| per step between the last two full steps
	stale                []int     // per image token: steps since computed
	lastFull             int
}

func (c *cachetPolicy) Begin(s model.Schedule) error {
	c.steps = s.Steps
	c.units = newUnits(&c.ledger)
	c.prevOut, c.rate, c.stale = nil, nil, nil
	due := func(step int) bool { return !c.guidance || step%c.interval == 0 || c.rate == nil || step == c.steps-1 }
	c.branches = newBranchReuse(due, 0, c.hold)
	return nil
}

func (c *cachetPolicy) End() {
	c.branches.drop()
	c.units.drop()
}

func (c *cachetPolicy) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	full := step%c.interval == 0 || c.rate == nil || step == c.steps-1
	var sel *model.Tokens // the step's fresh tokens, built on the first unit (the pass's rows are known then)
	defer func() { sel.Drop() }()
	var fresh [][]int64 // per image
	if !full {
		fresh = c.freshTokens()
	}
	selection := func(rows int) (*model.Tokens, error) {
		if sel != nil {
			return sel, nil
		}
		perRow := make([][]int64, rows) // an image's guided and unguided rows share its tokens
		for r := range perRow {
			perRow[r] = fresh[r%c.images]
		}
		var err error
		sel, err = model.NewTokens(perRow, c.units.get(unitKey{0, model.SublayerAttention}))
		return sel, err
	}
	hooks := &model.Hooks{Branches: c.branches.hooks(step)}
	halved := func() bool { return c.branches.skipping } // the pass runs the conditional rows alone
	hooks.Sublayer = func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		key := unitKey{block, kind}
		if full {
			c.computed++
			return c.units.compute(key, compute)
		}
		cur, err := selection(c.passRows(key, halved()))
		if err != nil {
			return nil, err
		}
		v, err := compute(cur)
		if err != nil {
			return nil, err
		}
		c.forecast++ // a partly computed unit
		return c.merge(key, cur, v, halved())
	}
	// Keys and values are cached per token like the sublayers' outputs, so that a partial step projects
	// only its fresh tokens.
	hooks.KeysValues = func(block int, sel *model.Tokens, computed *model.Feature) (*model.Feature, error) {
		key := unitKey{block, sublayerKeysValues}
		if sel == nil || c.units.get(key) == nil {
			if err := c.units.keep(key, computed); err != nil {
				return nil, err
			}
			return computed.Clone()
		}
		return c.merge(key, sel, computed, halved())
	}
	out, err := eval(hooks)
	if err != nil {
		return nil, err
	}
	if full {
		if err := c.observe(step, out); err != nil {
			out.Drop()
			return nil, err
		}
	}
	return out, nil
}

// passRows is the rows of a pass: the cached unit's, or its images' alone when the guidance branches are
// reused.
func (c *cachetPolicy) passRows(key unitKey, halved bool) int {
	if halved {
		return c.images
	}
	shape, err := c.units.get(key).Shape()
	if err != nil || len(shape) == 0 {
		return c.images
	}
	return int(shape[0])
}

// merge writes the selected tokens' computed values into unit key's cache and returns the unit for the
// pass: on a halved pass the conditional rows alone, the unconditional rows keeping their cached values.
func (c *cachetPolicy) merge(key unitKey, sel *model.Tokens, computed *model.Feature, halved bool) (*model.Feature, error) {
	cached := c.units.get(key)
	if !halved {
		merged, err := cached.SetTokens(sel, computed)
		if err != nil {
			return nil, err
		}
		c.units.put(key, merged)
		return merged.Clone()
	}
	shape, err := cached.Shape()
	if err != nil {
		return nil, err
	}
	cond, err := cached.Rows(0, c.images)
	if err != nil {
		return nil, err
	}
	defer cond.Drop()
	rest, err := cached.Rows(c.images, int(shape[0])-c.images)
	if err != nil {
		return nil, err
	}
	defer rest.Drop()
	merged, err := cond.SetTokens(sel, computed)
	if err != nil {
		return nil, err
	}
	next, err := model.ConcatRows(merged, rest)
	if err != nil {
		merged.Drop()
		return nil, err
	}
	c.units.put(key, next)
	return merged, nil
}

// freshTokens picks each image's ratio·T tokens of largest rate × (staleness + 1) and ages the rest.
func (c *cachetPolicy) freshTokens() [][]int64 {
	k := max(1, min(c.tokens, int(math.Round(c.ratio*float64(c.tokens)))))
	out := make([][]int64, c.images)
	for img := range out {
		base := img * c.tokens
		order := ranked(c.tokens, func(i int) float64 { return c.rate[base+i] * float64(c.stale[base+i]+1) })
		for i := range c.tokens {
			c.stale[base+i]++
		}
		for _, i := range order[:k] {
			out[img] = append(out[img], int64(i))
			c.stale[base+i] = 0
		}
	}
	return out
}

// observe records a full step's output [N, C, H, W]: each token's rate of change since the last full step.
func (c *cachetPolicy) observe(step int, out *model.Feature) error {
	shape, err := out.Shape()
	if err != nil {
		return err
	}
	if len(shape) != 4 || shape[2] != shape[3] {
		return fmt.Errorf("cachet policy: output of shape %v, want [N, C, H, H]", shape)
	}
	vals, err := out.Values()
	if err != nil {
		return err
	}
	if c.tokens == 0 {
		if err := c.layout(shape); err != nil {
			return err
		}
	}
	if c.prevOut != nil {
		gap := float64(step - c.lastFull)
		rate := make([]float64, c.images*c.tokens)
		addPatchChange(rate, c.prevOut, vals, c.images, int(shape[1]), int(shape[2]), c.grid)
		for i := range rate {
			rate[i] /= gap
		}
		c.rate = rate
		c.stale = make([]int, len(rate))
	}
	c.prevOut, c.lastFull = vals, step
	return nil
}

// layout reads the token grid off the cached units and the output: tokens per image from a unit's
// shape, their side from the count.
func (c *cachetPolicy) layout(outShape []int64) error {
	unit := c.units.get(unitKey{0, model.SublayerAttention})
	if unit == nil {
		return fmt.Errorf("cachet policy: no block output was computed")
	}
	us, err := unit.Shape()
	if err != nil {
		return err
	}
	c.images, c.tokens = int(outShape[0]), int(us[1])
	if int(us[0])%c.images != 0 {
		return fmt.Errorf("cachet policy: %d rows of tokens for %d images", us[0], c.images)
	}
	c.grid, _, err = tokenGrid(c.tokens, int(outShape[2]))
	return err
}

// sublayerKeysValues keys a block's cached keys and values among the sublayer outputs.
const sublayerKeysValues model.Sublayer = -1

func init() {
	register("cachet", spec{
		help: "Cachet's policy: full steps every N; in between each image recomputes only its fastest-changing, stalest tokens through attention and MLP",
		params: map[string]param{
			"interval": {def: 2, min: 1, max: 50, integer: true, help: "steps between full computations"},
			"ratio":    {def: 0.25, min: 0, max: 1, help: "share of each image's tokens recomputed between full steps"},
			"guidance": {def: 1, min: 0, max: 1, integer: true, help: "1: partial steps also reuse guidance's unconditional and negative branches (their difference to the conditional prediction)"},
		},
		build: func(p map[string]float64, depth int) Policy {
			return &cachetPolicy{ledger: ledger{name: "cachet"}, interval: int(p["interval"]), ratio: p["ratio"], depth: depth,
				guidance: p["guidance"] == 1}
		},
	})
}
