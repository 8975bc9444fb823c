package stepcache

import (
	"maps"
	"math"
	"slices"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// ertaCache is ERTACache (docs/step-caching.md): the steps that reuse the block stack's last residual are
// fixed offline per step count (`cachet calibrate ertacache`), and on each of them the cached output ṽ is
// rectified by the step's fitted linear error model (v̂ = ṽ − (a·ṽ + b)) and its step shortened by the
// step's factor φ, the time it loses spread over the remaining steps so that sampling still ends at t = 0
// (with the Euler sampler; the model still sees the schedule's times).
type ertaCache struct {
	ledger
	rectify, adjust bool
	depth           int
	profiles        map[int]ertaProfile
	p               ertaProfile
	deltas          []float64
	covered, total  float64 // time covered so far and in all (the schedule's)
	euler           bool
	residual        *model.Feature
}

// ertaProfile is one step count's calibration: per step its model time, whether it reuses, φ, a and b.
type ertaProfile struct {
	times []float64
	reuse []bool
	phi   []float64
	a, b  []float64
}

const ertaFields = 5 // per step in a record

// ertaProfiles reads a calibration: records [steps, times×steps, reuse×steps, φ×steps, a×steps,
// b×steps], one per step count.
func ertaProfiles(cal []float64) (map[int]ertaProfile, error) {
	out := map[int]ertaProfile{}
	for len(cal) > 0 {
		n := int(cal[0])
		if n < 1 || cal[0] != float64(n) || len(cal) < 1+ertaFields*n {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "ertacache's calibration is malformed; run 'cachet calibrate ertacache' again")
		}
		field := func(k int) []float64 { return cal[1+k*n : 1+(k+1)*n] }
		p := ertaProfile{times: field(0), reuse: make([]bool, n), phi: field(2), a: field(3), b: field(4)}
		for i, v := range field(1) {
			p.reuse[i] = v != 0
		}
		out[n] = p
		cal = cal[1+ertaFields*n:]
	}
	return out, nil
}

// onSchedule is the profile for a schedule: the record of its step count, or else, step by step, the
// profiled step nearest in model time of the record with the nearest step count (a detail redraw's
// shorter pass, a step count not profiled). The first step never reuses.
func onSchedule(profiles map[int]ertaProfile, s model.Schedule) (ertaProfile, bool) {
	if p, ok := profiles[s.Steps]; ok && slices.Equal(p.times, s.Times) {
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
	from := profiles[best]
	out := ertaProfile{times: s.Times, reuse: make([]bool, s.Steps), phi: make([]float64, s.Steps), a: make([]float64, s.Steps), b: make([]float64, s.Steps)}
	for i, t := range s.Times {
		k := 0
		for j, u := range from.times {
			if math.Abs(u-t) < math.Abs(from.times[k]-t) {
				k = j
			}
		}
		out.reuse[i], out.phi[i], out.a[i], out.b[i] = i > 0 && from.reuse[k], from.phi[k], from.a[k], from.b[k]
	}
	return out, true
}

func abs(v int) int { return max(v, -v) }

// record is the profile's calibration record (ertaProfiles' inverse).
func (p ertaProfile) record() []float64 {
	n := len(p.reuse)
	out := append([]float64{float64(n)}, p.times...)
	for _, r := range p.reuse {
		out = append(out, map[bool]float64{false: 0, true: 1}[r])
	}
	out = append(out, p.phi...)
	out = append(out, p.a...)
	return append(out, p.b...)
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
	p, ok := onSchedule(c.profiles, s)
	if !ok {
		return cachet.Errorf(cachet.CodeInvalidArgument, "ertacache has no calibration; run 'cachet calibrate ertacache --steps %d'", s.Steps)
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
			"rectify": {def: 1, min: 0, max: 1, integer: true, help: "apply the fitted error model (error rectification)"},
			"adjust":  {def: 1, min: 0, max: 1, integer: true, help: "shorten reused steps and spread the time over the rest (timestep adjustment)"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy ertacache needs the model's reuse profile (run 'cachet calibrate ertacache --steps N')")
			}
			profiles, err := ertaProfiles(calibration)
			if err != nil {
				return nil, err
			}
			return &ertaCache{ledger: ledger{name: "ertacache"}, rectify: p["rectify"] == 1, adjust: p["adjust"] == 1, depth: depth, profiles: profiles}, nil
		},
	})
}
