package stepcache

import (
	"maps"
	"math"
	"slices"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// ertaCache is ERTACache (docs/step-caching.md): the steps that reuse the block stack's last residual are
// picked from an offline profile per step count (`cachet calibrate ertacache`) at the threshold λ (or, with
// a budget, placed by the profile's least error for that share of computed steps), and on each of them the
// cached output ṽ is rectified by the step's fitted linear error model (v̂ = ṽ − (a·ṽ + b)). With adjust
// (off by default) the step is also shortened by the step's factor φ, the time it loses spread over the
// remaining steps so that sampling still ends at t = 0 (with the Euler sampler; the model still sees the
// schedule's times).
type ertaCache struct {
	ledger
	rectify, adjust bool
	threshold       float64
	budget          float64
	depth           int
	profiles        map[int]ertaProfile
	p               ertaProfile
	deltas          []float64
	covered, total  float64 // time covered so far and in all (the schedule's)
	euler           bool
	residual        *model.Feature
}

// ertaProfile is one step count's calibration: per step its model time, φ, a and b, and between every two
// steps j < i the residual's ℓ1rel ‖r_j − r_i‖₁/‖r_i‖₁ on the uncached trajectory (rel[j·steps+i]), from
// which a threshold picks the reused steps; reuse is that pick.
type ertaProfile struct {
	times, rel []float64
	phi, a, b  []float64
	reuse      []bool
}

// ertaProfiles reads a calibration: records [steps, times×steps, rel×steps², φ×steps, a×steps, b×steps],
// one per step count.
func ertaProfiles(cal []float64) (map[int]ertaProfile, error) {
	out := map[int]ertaProfile{}
	for len(cal) > 0 {
		n := int(cal[0])
		size := 1 + 4*n + n*n
		if n < 1 || cal[0] != float64(n) || len(cal) < size {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "ertacache's calibration is malformed; run 'cachet calibrate ertacache' again")
		}
		rest := cal[1:size]
		next := func(k int) []float64 { v := rest[:k]; rest = rest[k:]; return v }
		out[n] = ertaProfile{times: next(n), rel: next(n * n), phi: next(n), a: next(n), b: next(n)}
		cal = cal[size:]
	}
	return out, nil
}

// walk is the reference's policy calibration on the profile: from the kept residual, a step whose ℓ1rel to
// it is below threshold reuses it, any other step computes and keeps its own; the first and last steps
// always compute.
func (p ertaProfile) walk(threshold float64) []bool {
	n := len(p.times)
	reuse := make([]bool, n)
	kept := 0
	for i := 1; i < n-1; i++ {
		if p.rel[kept*n+i] < threshold {
			reuse[i] = true
		} else {
			kept = i
		}
	}
	return reuse
}

// onSchedule is the profile for a schedule at threshold: the record of its step count, or else, step by
// step, the profiled step nearest in model time of the record with the nearest step count (a detail
// redraw's shorter pass, a step count not profiled).
func onSchedule(profiles map[int]ertaProfile, s model.Schedule, threshold float64) (ertaProfile, bool) {
	if p, ok := profiles[s.Steps]; ok && slices.Equal(p.times, s.Times) {
		p.reuse = p.walk(threshold)
		return p, true
	}
	best := -1
	for n := range profiles {
		if d, bd := abs(n-s.Steps), abs(best-s.Steps); best < 0 || d < bd || (d == bd && n > best) {
			best = n
		}
	}
	if best < 0 {
		return ertaProfile{}, false
	}
	from, n := profiles[best], s.Steps
	k := make([]int, n) // the profiled step of each step
	for i, t := range s.Times {
		for j, u := range from.times {
			if math.Abs(u-t) < math.Abs(from.times[k[i]]-t) {
				k[i] = j
			}
		}
	}
	out := ertaProfile{times: s.Times, rel: make([]float64, n*n), phi: make([]float64, n), a: make([]float64, n), b: make([]float64, n)}
	for i := range n {
		out.phi[i], out.a[i], out.b[i] = from.phi[k[i]], from.a[k[i]], from.b[k[i]]
		for j := range i {
			out.rel[j*n+i] = from.rel[k[j]*len(from.times)+k[i]]
		}
	}
	out.reuse = out.walk(threshold)
	return out, true
}

// optimal is the reuse pattern with computed steps (the first and last among them) whose profiled error
// is least: a reused step i after computed step k costs rel(k, i) weighted by the step's size. It is BAC's
// scheduler on the negated cost, the last step kept computed by a prohibitive cost for reusing it.
func (p ertaProfile) optimal(computed int, deltas []float64) []bool {
	n := len(p.times)
	score := make([]float64, n*n)
	for k := range n {
		for i := k + 1; i < n; i++ {
			if i == n-1 {
				score[k*n+i] = -1e9
			} else {
				score[k*n+i] = -p.rel[k*n+i] * math.Abs(deltas[i])
			}
		}
	}
	update := scheduleUpdates(score, n, max(computed, 2))
	reuse := make([]bool, n)
	for i, u := range update {
		reuse[i] = !u
	}
	return reuse
}

func abs(v int) int { return max(v, -v) }

// record is the profile's calibration record (ertaProfiles' inverse).
func (p ertaProfile) record() []float64 {
	out := append([]float64{float64(len(p.times))}, p.times...)
	for _, f := range [][]float64{p.rel, p.phi, p.a, p.b} {
		out = append(out, f...)
	}
	return out
}

// MergeErtaProfile returns the calibration cal with the record for one step count replaced by rec.
func MergeErtaProfile(cal, rec []float64) ([]float64, error) {
	all, err := ertaProfiles(cal)
	if err != nil {
		all = map[int]ertaProfile{}
	}
	p, err := ertaProfiles(rec)
	if err != nil {
		return nil, err
	}
	for n, v := range p {
		all[n] = v
	}
	var out []float64
	for _, n := range slices.Sorted(maps.Keys(all)) {
		out = append(out, all[n].record()...)
	}
	return out, nil
}

func (c *ertaCache) Begin(s model.Schedule) error {
	p, ok := onSchedule(c.profiles, s, c.threshold)
	if !ok {
		return cachet.Errorf(cachet.CodeInvalidArgument, "ertacache has no calibration; run 'cachet calibrate ertacache --steps %d'", s.Steps)
	}
	if c.budget > 0 {
		p.reuse = p.optimal(int(math.Round(c.budget*float64(s.Steps))), s.Deltas)
	}
	c.p, c.steps, c.deltas, c.euler = p, s.Steps, s.Deltas, s.Euler
	c.covered, c.total = 0, 0
	for _, d := range s.Deltas {
		c.total += d
	}
	return nil
}

func (c *ertaCache) End() { c.swap(&c.residual, nil) }

func (c *ertaCache) Eval(step int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	reuse := c.p.reuse[step] && c.residual != nil
	out, err := eval(&model.Hooks{Stack: c.residualStack(c.depth, &c.residual, func() bool { return reuse })})
	if err != nil {
		return nil, err
	}
	phi, a, b := 1.0, 0.0, 0.0
	if reuse {
		phi = c.p.phi[step]
		if c.rectify {
			a, b = c.p.a[step], c.p.b[step]
		}
	}
	k := c.stepFactor(step, phi)
	if k == 1 && a == 0 && b == 0 {
		return out, nil
	}
	// v̂ = ṽ − (a·ṽ + b), its step scaled by k; eval's output stays the step's to drop.
	return out.Affine(k*(1-a), -k*b)
}

// stepFactor is what step i's output is scaled by so that the step covers phi of its share of the time
// left (1 without timestep adjustment).
func (c *ertaCache) stepFactor(i int, phi float64) float64 {
	if !c.adjust || !c.euler {
		return 1
	}
	var rest float64
	for _, d := range c.deltas[i:] {
		rest += d
	}
	size := phi * c.deltas[i] * (c.total - c.covered) / rest
	c.covered += size
	return size / c.deltas[i]
}

func init() {
	register("ertacache", spec{
		help: "ERTACache: offline-profiled steps reuse the block stack's residual, rectified by a fitted linear error model, their step shortened",
		params: map[string]param{
			"threshold": {def: 0.15, min: 0.001, max: 2, help: "ℓ1rel of the kept residual to a step's (profiled) below which the step reuses it (λ)"},
			"rectify":   {def: 1, min: 0, max: 1, integer: true, help: "apply the fitted error model (error rectification)"},
			"budget":    {def: 0, min: 0, max: 1, help: "share of steps computed, placed by the profile's least total error (0: the threshold's walk)"},
			"adjust":    {def: 0, min: 0, max: 1, integer: true, help: "shorten reused steps by the profiled φ and spread the time over the rest (timestep adjustment; off: measured harmful here, docs/step-caching.md)"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy ertacache needs the model's reuse profile (run 'cachet calibrate ertacache --steps N')")
			}
			profiles, err := ertaProfiles(calibration)
			if err != nil {
				return nil, err
			}
			return &ertaCache{ledger: ledger{name: "ertacache"}, rectify: p["rectify"] == 1, threshold: p["threshold"], adjust: p["adjust"] == 1, budget: p["budget"], depth: depth, profiles: profiles}, nil
		},
	})
}
