package stepcache

import (
	"math"
	"slices"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// bac is BAC, Block-wise Adaptive Caching (docs/step-caching.md): every unit (a block's attention or MLP)
// recomputes only at its own update steps — chosen per request by a dynamic program over the unit's
// profiled step-to-step similarities (`cachet calibrate bac`) to keep the cached output as similar as
// possible to the skipped ones — and reuses its last output in between. The Bubbling Union then gives the
// most volatile units the update steps of every MLP at or below them, so their errors do not run on into
// the MLPs.
type bac struct {
	ledger
	share   float64
	bubbles int
	depth   int
	cal     []float64
	prof    bacProfile
	updates map[unitKey][]bool // per unit, per step
	cached  units
}

// bacProfile is the calibration: the profiled step count, per unit (block-major, attention then MLP) the
// cosine similarity of its outputs between every two steps, and each unit's volatility.
type bacProfile struct {
	steps      int
	sim        [][]float64 // per unit: steps×steps
	volatility []float64
}

func bacFromCalibration(cal []float64, depth int) (bacProfile, error) {
	units := 2 * depth
	bad := cachet.Errorf(cachet.CodeInvalidArgument, "cache policy bac needs the model's similarity profile for %d blocks (run 'cachet calibrate bac')", depth)
	if len(cal) < 1 {
		return bacProfile{}, bad
	}
	n := int(cal[0])
	if n < 2 || len(cal) != 1+units*n*n+units {
		return bacProfile{}, bad
	}
	p := bacProfile{steps: n, volatility: cal[1+units*n*n:]}
	for u := range units {
		p.sim = append(p.sim, cal[1+u*n*n:1+(u+1)*n*n])
	}
	return p, nil
}

// BacCalibration writes a profile as the calibration record bacFromCalibration reads.
func BacCalibration(steps int, sim [][]float64, volatility []float64) []float64 {
	out := []float64{float64(steps)}
	for _, s := range sim {
		out = append(out, s...)
	}
	return append(out, volatility...)
}

func (c *bac) Begin(s model.Schedule) error {
	var err error
	if c.prof, err = bacFromCalibration(c.cal, c.depth); err != nil {
		return err
	}
	c.steps = s.Steps
	c.cached = newUnits(&c.ledger)
	k := max(1, int(math.Round(c.share*float64(s.Steps))))
	c.updates = map[unitKey][]bool{}
	for u := range 2 * c.depth {
		c.updates[unitKey{u / 2, model.Sublayer(u % 2)}] = scheduleUpdates(resampleSim(c.prof.sim[u], c.prof.steps, s.Steps), s.Steps, k)
	}
	c.bubble()
	return nil
}

// bubble is the Bubbling Union: the `bubbles` most volatile units (when at least two) each also update at
// the update steps of every MLP at their block or deeper.
func (c *bac) bubble() {
	if c.bubbles < 2 {
		return
	}
	order := ranked(len(c.prof.volatility), func(i int) float64 { return c.prof.volatility[i] })
	chosen := slices.Clone(order[:min(c.bubbles, len(order))])
	slices.Sort(chosen) // block-major, attention before MLP
	merged := map[unitKey][]bool{}
	for _, u := range chosen {
		key := unitKey{u / 2, model.Sublayer(u % 2)}
		steps := slices.Clone(c.updates[key])
		for b := key.block; b < c.depth; b++ {
			for i, up := range c.updates[unitKey{b, model.SublayerMLP}] {
				steps[i] = steps[i] || up
			}
		}
		merged[key] = steps
	}
	for k, v := range merged {
		c.updates[k] = v
	}
}

func (c *bac) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	return eval(&model.Hooks{Sublayer: func(block int, kind model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
		key := unitKey{block, kind}
		if kept := c.cached.get(key); kept != nil && !c.updates[key][step] {
			c.reused++
			return kept.Clone()
		}
		c.computed++
		return c.cached.compute(key, compute)
	}})
}

func (c *bac) End() { c.cached.drop() }

// resampleSim maps a similarity matrix profiled at n steps onto m steps (nearest profiled step by
// position in the trajectory).
func resampleSim(sim []float64, n, m int) []float64 {
	if n == m {
		return sim
	}
	at := func(i int) int { return min(n-1, int(math.Round(float64(i)*float64(n-1)/float64(max(1, m-1))))) }
	out := make([]float64, m*m)
	for i := range m {
		for j := range m {
			out[i*m+j] = sim[at(i)*n+at(j)]
		}
	}
	return out
}

// scheduleUpdates is BAC's Adaptive Caching Scheduler: the k update steps (step 0 among them) that split
// the trajectory into k runs, each reusing its first step's output, maximising the summed similarity of
// every step to the one it reuses. dp[j][i] is the best score of steps 0…i in j runs.
func scheduleUpdates(sim []float64, steps, k int) []bool {
	k = min(k, steps)
	prefix := make([][]float64, steps) // prefix[a][b+1] = Σ_{t=a..b} sim[a][t]
	for a := range steps {
		prefix[a] = make([]float64, steps+1)
		for t := range steps {
			prefix[a][t+1] = prefix[a][t] + sim[a*steps+t]
		}
	}
	cost := func(a, b int) float64 { return prefix[a][b+1] - prefix[a][a] }
	dp := make([][]float64, k+1)
	from := make([][]int, k+1)
	for j := range dp {
		dp[j], from[j] = make([]float64, steps), make([]int, steps)
		for i := range dp[j] {
			dp[j][i] = math.Inf(-1)
		}
	}
	for i := range steps {
		dp[1][i] = cost(0, i)
	}
	for j := 2; j <= k; j++ {
		for i := j - 1; i < steps; i++ {
			for s := j - 2; s < i; s++ { // the previous run ends at s, this one starts at s+1
				if v := dp[j-1][s] + cost(s+1, i); v > dp[j][i] {
					dp[j][i], from[j][i] = v, s
				}
			}
		}
	}
	out := make([]bool, steps)
	out[0] = true
	for j, i := k, steps-1; j > 1; j-- {
		s := from[j][i]
		out[s+1] = true
		i = s
	}
	return out
}

func init() {
	register("bac", spec{
		help: "BAC: each attention and MLP updates at its own profiled steps (dynamic program over step similarities), volatile units bubbled with deeper MLPs",
		params: map[string]param{
			"share":   {def: 0.4, min: 0.02, max: 1, help: "update steps per unit, as a fraction of the steps (K/T)"},
			"bubbles": {def: 3, min: 0, max: 64, integer: true, help: "most volatile units given the deeper MLPs' update steps (Bubbling Union; < 2: off)"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy bac needs the model's similarity profile (run 'cachet calibrate bac')")
			}
			return &bac{ledger: ledger{name: "bac"}, share: p["share"], bubbles: int(p["bubbles"]), depth: depth, cal: calibration}, nil
		},
	})
}
