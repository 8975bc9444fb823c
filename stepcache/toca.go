package stepcache

import (
	"fmt"
	"math"

	"github.com/cachetlab/cachet/model"
)

// toca is ToCa, token-wise feature caching (docs/step-caching.md, "Cutting a step's cost"): a full step
// every interval steps stores every block's attention and MLP outputs and the attention each token received; between full
// steps attention is reused whole and the MLP is recomputed for each image's fresh tokens alone, the
// others keeping their cached outputs. Tokens are scored as in the reference code.
type toca struct {
	ledger
	interval               int
	ratio, weight, spatial float64
	depth                  int
	units                  units
	received               [][]float32 // per block: [B·T], the attention each token received at the last full step
	stale                  [][]int     // per block: [B·T], steps since the token's MLP output was computed
	rows, tokens           int
}

func (c *toca) Begin(s model.Schedule) error {
	c.steps = s.Steps
	c.units = newUnits(&c.ledger)
	c.received = make([][]float32, c.depth)
	c.stale = make([][]int, c.depth)
	return nil
}

func (c *toca) End() { c.units.drop() }

func (c *toca) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	full := step%c.interval == 0 || c.units.len() < 2*c.depth
	hooks := &model.Hooks{Sublayer: func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		key := unitKey{block, kind}
		if full {
			c.computed += c.tokens
			return c.units.compute(key, compute)
		}
		if kind == model.SublayerAttention {
			c.reused += c.tokens
			return c.units.get(key).Clone()
		}
		return c.refresh(step, key, compute)
	}}
	if full {
		hooks.AttentionReceived = func(block int, received *model.Feature) error {
			shape, err := received.Shape()
			if err != nil {
				return err
			}
			if len(shape) != 2 {
				return fmt.Errorf("toca: attention received of shape %v, want [rows, tokens]", shape)
			}
			c.rows, c.tokens = int(shape[0]), int(shape[1])
			if c.received[block], err = received.Values(); err != nil {
				return err
			}
			c.stale[block] = make([]int, c.rows*c.tokens)
			return nil
		}
	}
	return eval(hooks)
}

// refresh recomputes the MLP of block key.block for the fresh tokens and returns the merged output.
func (c *toca) refresh(step int, key unitKey, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
	cached := c.units.get(key)
	k := int(c.freshShare(step, key.block) * float64(c.tokens))
	k = min(k, c.tokens)
	stale := c.stale[key.block]
	for i := range stale {
		stale[i]++
	}
	if k <= 0 {
		c.reused += c.tokens
		return cached.Clone()
	}
	rows := make([][]int64, c.rows)
	for r := range rows {
		rows[r] = c.freshTokens(key.block, r, k)
		for _, t := range rows[r] {
			stale[r*c.tokens+int(t)] = 0
		}
	}
	sel, err := model.NewTokens(rows, cached)
	if err != nil {
		return nil, err
	}
	defer sel.Drop()
	fresh, err := compute(sel)
	if err != nil {
		return nil, err
	}
	merged, err := cached.SetTokens(sel, fresh)
	if err != nil {
		return nil, err
	}
	c.units.put(key, merged)
	c.computed += k
	c.reused += c.tokens - k
	return merged.Clone()
}

// freshShare is the reference's "ToCa" ratio schedule for the MLP: more fresh tokens in early blocks and
// late steps (its step index counts down to 0), and the attention's share moved onto the MLP (×2.5).
func (c *toca) freshShare(step, block int) float64 {
	remaining := float64(c.steps-1-step) / float64(c.steps)
	stepFactor := 1 + 0.4 - 2*0.4*remaining
	layerFactor := 1.0
	if c.depth > 1 {
		layerFactor = 1 + 0.8 - 2*0.8*float64(block)/float64(c.depth-1)
	}
	return c.ratio * stepFactor * layerFactor * (1 + 0.6*2.5)
}

// freshTokens scores row r's tokens at block and returns the k best: the attention received,
// L2-normalised over the row, plus weight × staleness / interval; then the best token of every 2×2
// neighbourhood gains spatial × its score, spreading the fresh tokens over the image.
func (c *toca) freshTokens(block, r, k int) []int64 {
	t := c.tokens
	recv := c.received[block][r*t : (r+1)*t]
	stale := c.stale[block][r*t : (r+1)*t]
	var norm float64
	for _, v := range recv {
		norm += float64(v) * float64(v)
	}
	norm = math.Max(math.Sqrt(norm), 1e-12)
	score := make([]float64, t)
	for i := range score {
		score[i] = float64(recv[i])/norm + c.weight*float64(stale[i])/float64(c.interval)
	}
	side := int(math.Round(math.Sqrt(float64(t))))
	if side*side == t && side%2 == 0 {
		for by := 0; by < side; by += 2 {
			for bx := 0; bx < side; bx += 2 {
				best := by*side + bx
				for _, i := range []int{by*side + bx + 1, (by+1)*side + bx, (by+1)*side + bx + 1} {
					if score[i] > score[best] {
						best = i
					}
				}
				score[best] += c.spatial * score[best]
			}
		}
	}
	order := ranked(t, func(i int) float64 { return score[i] })
	out := make([]int64, k)
	for i := range out {
		out[i] = int64(order[i])
	}
	return out
}

func init() {
	register("toca", spec{
		help: "ToCa: full steps every N; in between attention is reused and the MLP recomputed only for each image's top-scored fresh tokens",
		params: map[string]param{
			"interval": {def: 3, min: 1, max: 50, integer: true, help: "steps between full computations (N, fresh_threshold)"},
			"ratio":    {def: 0.07, min: 0, max: 1, help: "base share of fresh tokens, scaled by step, block and sublayer"},
			"weight":   {def: 0.25, min: 0, max: 10, help: "staleness bonus per interval of steps since a token was fresh"},
			"spatial":  {def: 0.6, min: 0, max: 10, help: "bonus of each 2×2 neighbourhood's best token"},
		},
		build: func(p map[string]float64, depth int) Policy {
			return &toca{ledger: ledger{name: "toca"}, interval: int(p["interval"]), ratio: p["ratio"], weight: p["weight"],
				spatial: p["spatial"], depth: depth}
		},
	})
}
