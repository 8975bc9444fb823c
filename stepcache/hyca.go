package stepcache

import (
	"fmt"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// HyCa (docs/step-caching.md): full steps on FORA's schedule; in between every unit's output is forecast
// channel by channel, each channel by the solver its cluster was given offline (`cachet calibrate hyca`:
// channels clustered by how their trajectories move, each cluster's solver the one that forecast it best).

// hycaSolver is one of HyCa's per-channel forecasters: a linear combination of the last three full values.
type hycaSolver uint8

const (
	solverReuse   hycaSolver = iota // F₀ (FORA)
	solverTaylor1                   // F₀ + k·D₁ (first-order Taylor)
	solverTaylor2                   // F₀ + k·D₁ + k²/2·D₂ (TaylorSeer's second order)
	solverAB2                       // F₀ + k·(3/2·D₁ − 1/2·D₁′) (Adams–Bashforth 2)
	solverRK2                       // F₀ + k·(F₀ − F₂)/(h₁ + h₂): the slope over the wider baseline (HyCa's RK form)
	numSolvers
)

var solverNames = [numSolvers]string{"reuse", "taylor1", "taylor2", "ab2", "rk2"}

func (s hycaSolver) String() string {
	if s < numSolvers {
		return solverNames[s]
	}
	return fmt.Sprintf("solver%d", s)
}

// coefficients are solver s's weights on F₀, F₁, F₂ (newest first) k steps after F₀, with h₁ = t₀ − t₁ and
// h₂ = t₁ − t₂ the step gaps between them; have is how many values there are (fewer than a solver needs
// falls back to first order, or to reuse with one). D₁ = (F₀ − F₁)/h₁, D₁′ = (F₁ − F₂)/h₂,
// D₂ = (D₁ − D₁′)/((h₁ + h₂)/2). Every set sums to 1: a constant is forecast exactly.
func (s hycaSolver) coefficients(k, h1, h2 float64, have int) [3]float64 {
	if s == solverReuse || have < 2 {
		return [3]float64{1, 0, 0}
	}
	if s == solverTaylor1 || have < 3 {
		return [3]float64{1 + k/h1, -k / h1, 0}
	}
	switch s {
	case solverTaylor2:
		hm := (h1 + h2) / 2
		q := k * k / 2 / hm
		return [3]float64{1 + k/h1 + q/h1, -k/h1 - q/h1 - q/h2, q / h2}
	case solverAB2:
		return [3]float64{1 + 1.5*k/h1, -1.5*k/h1 - 0.5*k/h2, 0.5 * k / h2}
	default: // solverRK2
		return [3]float64{1 + k/(h1+h2), 0, -k / (h1 + h2)}
	}
}

// hycaUnit forecasts one unit from its last three full values with a solver per channel.
type hycaUnit struct {
	solvers []hycaSolver // per channel
	f       []*model.Feature
	at      []int // the steps of f, newest first
}

func (u *hycaUnit) full(step int, v *model.Feature) error {
	if shape, err := v.Shape(); err != nil || int(shape[len(shape)-1]) != len(u.solvers) {
		v.Drop()
		return cachet.Errorf(cachet.CodeInvalidArgument, "hyca's profile has %d channels per unit, the model %v; run 'cachet calibrate hyca' for these weights", len(u.solvers), shape)
	}
	u.f, u.at = append([]*model.Feature{v}, u.f...), append([]int{step}, u.at...)
	if len(u.f) > 3 {
		u.f[3].Drop()
		u.f, u.at = u.f[:3], u.at[:3]
	}
	return nil
}

func (u *hycaUnit) predict(step int) (*model.Feature, bool, error) {
	have := len(u.f)
	k := float64(step - u.at[0])
	h1, h2 := 1.0, 1.0
	if have > 1 {
		h1 = float64(u.at[0] - u.at[1])
	}
	if have > 2 {
		h2 = float64(u.at[1] - u.at[2])
	}
	var sets [numSolvers][3]float64
	for s := range numSolvers {
		sets[s] = s.coefficients(k, h1, h2, have)
	}
	weights := make([][]float32, have)
	for j := range weights {
		weights[j] = make([]float32, len(u.solvers))
	}
	reuseOnly := true
	for d, s := range u.solvers {
		for j := range weights {
			weights[j][d] = float32(sets[s][j])
		}
		reuseOnly = reuseOnly && sets[s] == [3]float64{1, 0, 0}
	}
	if reuseOnly {
		f, err := u.f[0].Clone()
		return f, true, err
	}
	f, err := model.CombineChannels(weights, u.f)
	return f, false, err
}

func (u *hycaUnit) bytes() int64 { return bytesOf(u.f) }

func (u *hycaUnit) drop() {
	dropAll(u.f)
	u.f, u.at = nil, nil
}

// hycaProfile splits a calibration (per unit — block-major, attention then MLP — one solver per channel)
// into units.
func hycaProfile(calibration []float64, depth int) (map[unitKey][]hycaSolver, error) {
	units := 2 * depth
	if len(calibration) == 0 || len(calibration)%units != 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy hyca needs the model's channel profile for %d blocks (run 'cachet calibrate hyca')", depth)
	}
	width := len(calibration) / units
	out := map[unitKey][]hycaSolver{}
	for u := range units {
		key := unitKey{block: u / 2, kind: model.Sublayer(u % 2)}
		solvers := make([]hycaSolver, width)
		for d := range solvers {
			v := calibration[u*width+d]
			if v < 0 || v >= float64(numSolvers) || v != float64(int(v)) {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "hyca's profile names solver %v; run 'cachet calibrate hyca' again", v)
			}
			solvers[d] = hycaSolver(v)
		}
		out[key] = solvers
	}
	return out, nil
}

// hyca is the sublayer policy with HyCa's forecasters, its profile read against the model's depth.
type hyca struct {
	sublayerPolicy
	calibration []float64
	depth       int
	profile     map[unitKey][]hycaSolver
}

func (h *hyca) Begin(s model.Schedule) error {
	var err error
	if h.profile, err = hycaProfile(h.calibration, h.depth); err != nil {
		return err
	}
	return h.sublayerPolicy.Begin(s)
}

func init() {
	register("hyca", spec{
		help: "HyCa: between full steps each channel of every attention and MLP output is forecast by the solver its cluster was profiled to need",
		params: map[string]param{
			"interval": {def: 4, min: 1, max: 50, integer: true, help: "steps between full computations (N)"},
			"warmup":   {def: 2, min: 0, max: 50, integer: true, help: "first steps always computed"},
		},
		buildCalibrated: func(p map[string]float64, depth int, calibration []float64) (Policy, error) {
			if len(calibration) == 0 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy hyca needs the model's channel profile (run 'cachet calibrate hyca')")
			}
			n, w := int(p["interval"]), int(p["warmup"])
			h := &hyca{calibration: calibration, depth: depth}
			h.sublayerPolicy = sublayerPolicy{ledger: ledger{name: "hyca"},
				isFull: func(s int) bool { return s < w || (s-w)%n == 0 },
				newF:   func(key unitKey) forecaster { return &hycaUnit{solvers: h.profile[key]} }}
			return h, nil
		},
	})
}
