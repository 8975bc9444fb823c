package stepcache

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cachetlab/cachet/model"
)

// asymRnR is AsymRnR (docs/step-caching.md): in every block's attention, tokens that a nearby "destination"
// token already stands for are dropped — from the queries at one ratio, from the keys and values at
// another (the asymmetry) — and each dropped query token takes its destination's output (restoration).
// Destinations are one random token per 2×2 cell of the token grid; every other token is matched to its
// nearest destination (Euclidean, on the block's attention input), and the most redundant are the ones
// dropped. The matching is cached for `window` steps (the matching cache); the first `warmup` steps run
// the full attention.
type asymRnR struct {
	ledger
	qRatio, kvRatio float64
	window, warmup  int
	step            int
	seed            uint64
	matches         map[int]*asymMatch // per block, for the current window
}

// asymMatch is one block's reduction for a window: the selections handed to the model.
type asymMatch struct {
	queries, keysValues, restore *model.Tokens
}

func (m *asymMatch) drop() {
	for _, t := range []*model.Tokens{m.queries, m.keysValues, m.restore} {
		if t != nil {
			t.Drop()
		}
	}
}

func (c *asymRnR) Begin(s model.Schedule) error {
	c.steps, c.matches = s.Steps, map[int]*asymMatch{}
	return nil
}

func (c *asymRnR) End() { c.forget() }

func (c *asymRnR) forget() {
	for b, m := range c.matches {
		m.drop()
		delete(c.matches, b)
	}
}

func (c *asymRnR) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	c.step = step
	if step < c.warmup || (c.qRatio == 0 && c.kvRatio == 0) {
		c.computed++
		return eval(nil)
	}
	if (step-c.warmup)%c.window == 0 {
		c.forget()
	}
	c.forecast++ // a reduced step: computed, on fewer tokens
	return eval(&model.Hooks{Reduce: func(block int, h *model.Feature) (*model.Tokens, *model.Tokens, *model.Tokens, error) {
		m, ok := c.matches[block]
		if !ok {
			var err error
			if m, err = c.match(block, h); err != nil {
				return nil, nil, nil, err
			}
			c.matches[block] = m
		}
		return m.queries, m.keysValues, m.restore, nil
	}})
}

// match builds a block's reduction from its attention input h [rows, T, D].
func (c *asymRnR) match(block int, h *model.Feature) (*asymMatch, error) {
	shape, err := h.Shape()
	if err != nil || len(shape) != 3 {
		return nil, fmt.Errorf("stepcache: asymrnr: attention input of shape %v: %v", shape, err)
	}
	rows, tokens, width := int(shape[0]), int(shape[1]), int(shape[2])
	grid := int(math.Round(math.Sqrt(float64(tokens))))
	if grid*grid != tokens {
		grid = 0
	}
	vals, err := h.Values()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.seed, uint64(block*1000+c.step)))
	dst := destinations(rng, grid, tokens)
	q, kv, restore := make([][]int64, rows), make([][]int64, rows), make([][]int64, rows)
	for r := range rows {
		x := vals[r*tokens*width : (r+1)*tokens*width]
		srcs, nearest, dist := matchSources(x, width, tokens, dst)
		order := ranked(len(srcs), func(i int) float64 { return -dist[i] }) // most redundant (closest) first
		q[r], restore[r] = reduceTokens(srcs, nearest, order, dst, tokens, c.qRatio)
		kv[r], _ = reduceTokens(srcs, nearest, order, dst, tokens, c.kvRatio)
	}
	m := &asymMatch{}
	build := func(sel [][]int64) (*model.Tokens, error) { return model.NewTokens(sel, h) }
	if m.queries, err = build(q); err == nil {
		if m.keysValues, err = build(kv); err == nil {
			m.restore, err = build(restore)
		}
	}
	if err != nil {
		m.drop()
		return nil, err
	}
	return m, nil
}

// destinations are one random token per 2×2 cell of a grid×grid token grid (every token when the tokens
// are no square grid, which reduces nothing).
func destinations(rng *rand.Rand, grid, tokens int) []int {
	if grid < 2 {
		out := make([]int, tokens)
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for cy := 0; cy < grid; cy += 2 {
		for cx := 0; cx < grid; cx += 2 {
			h, w := min(2, grid-cy), min(2, grid-cx)
			k := rng.IntN(h * w)
			out = append(out, (cy+k/w)*grid+cx+k%w)
		}
	}
	return out
}

// matchSources matches every non-destination token of x [tokens·width] to its nearest destination.
func matchSources(x []float32, width, tokens int, dst []int) (srcs, nearest []int, dist []float64) {
	isDst := make([]bool, tokens)
	for _, d := range dst {
		isDst[d] = true
	}
	for t := range tokens {
		if isDst[t] {
			continue
		}
		best, bd := 0, math.Inf(1)
		for j, d := range dst {
			var s float64
			for k := range width {
				v := float64(x[t*width+k] - x[d*width+k])
				s += v * v
			}
			if s < bd {
				best, bd = j, s
			}
		}
		srcs, nearest, dist = append(srcs, t), append(nearest, best), append(dist, bd)
	}
	return srcs, nearest, dist
}

// reduceTokens drops the ratio of all tokens (at most every source) that are most redundant: the kept
// tokens in order, and for every token the position in that list of its output (its own, or its
// destination's when dropped).
func reduceTokens(srcs, nearest, order, dst []int, tokens int, ratio float64) (kept, restore []int64) {
	drop := min(len(srcs), int(math.Floor(float64(tokens)*ratio)))
	dropped := make([]bool, tokens)
	for _, i := range order[:drop] {
		dropped[srcs[i]] = true
	}
	restore = make([]int64, tokens)
	for t := range tokens {
		if !dropped[t] {
			restore[t] = int64(len(kept))
			kept = append(kept, int64(t))
		}
	}
	for _, i := range order[:drop] { // destinations are never dropped
		restore[srcs[i]] = restore[dst[nearest[i]]]
	}
	return kept, restore
}

func init() {
	register("asymrnr", spec{
		help: "AsymRnR: attention drops redundant tokens — queries and keys/values at separate ratios — and restores dropped queries from their matched token",
		params: map[string]param{
			"q":      {def: 0.5, min: 0, max: 0.75, help: "share of all tokens dropped from the queries (restored from their destination)"},
			"kv":     {def: 0.25, min: 0, max: 0.75, help: "share of all tokens dropped from the keys and values"},
			"window": {def: 3, min: 1, max: 50, integer: true, help: "steps a matching is reused (the matching cache)"},
			"warmup": {def: 2, min: 0, max: 50, integer: true, help: "first steps with the full attention"},
		},
		build: func(p map[string]float64, _ int) Policy {
			return &asymRnR{ledger: ledger{name: "asymrnr"}, qRatio: p["q"], kvRatio: p["kv"], window: int(p["window"]), warmup: int(p["warmup"]), seed: 7}
		},
	})
}
