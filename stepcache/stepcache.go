// Package stepcache holds Cachet's training-free step-caching policies: per request, each decides at every
// sampler step whether to compute the denoiser (or parts of it) or to reuse/forecast cached features,
// through the model's seams (model.Hooks, model.StepCache).
package stepcache

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// Config names a policy and its parameters; parameters left out take the papers' defaults.
type Config struct {
	Name   string             `json:"name"`
	Params map[string]float64 `json:"params,omitempty"`
	// Calibration holds a policy's per-model profile where it needs one (MagCache's residual-magnitude
	// ratios per step), as written by `cachet calibrate`.
	Calibration []float64 `json:"calibration,omitempty"`
}

// Stats is what a policy reports about one request.
type Stats = cachet.StepCacheStats

// Policy is a per-request step cache with its statistics. Build a new one for every request.
type Policy interface {
	model.StepCache
	Stats() Stats
}

// param describes one parameter: its default and valid range.
type param struct {
	def, min, max float64
	integer       bool
	help          string
}

type spec struct {
	params map[string]param
	build  func(p map[string]float64, depth int) Policy
	help   string
	// calibrated policies are built from the config's calibration too.
	buildCalibrated func(p map[string]float64, depth int, calibration []float64) (Policy, error)
}

var registry = map[string]spec{}

func register(name string, s spec) { registry[name] = s }

// Names lists the policies.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Describe lists a policy's parameters with defaults and ranges (for help texts and errors).
func Describe(name string) string {
	s, ok := registry[name]
	if !ok {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(s.params) {
		p := s.params[k]
		parts = append(parts, fmt.Sprintf("%s=%g (%g…%g)", k, p.def, p.min, p.max))
	}
	if len(parts) == 0 {
		return name
	}
	return name + ": " + strings.Join(parts, ", ")
}

// Catalog lists every policy with its help and parameters, "none" first (GET /v1/catalog).
func Catalog() []cachet.PolicyInfo {
	out := make([]cachet.PolicyInfo, 0, len(registry))
	for _, name := range Names() {
		s := registry[name]
		info := cachet.PolicyInfo{Name: name, Help: s.help, Params: []cachet.PolicyParam{}}
		for _, k := range sortedKeys(s.params) {
			p := s.params[k]
			info.Params = append(info.Params, cachet.PolicyParam{Name: k, Default: p.def, Min: p.min, Max: p.max, Integer: p.integer, Help: p.help})
		}
		if name == "none" {
			out = append([]cachet.PolicyInfo{info}, out...)
		} else {
			out = append(out, info)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseConfig reads a policy written as "name" or "name:param=value,param=value" (flags, settings lists)
// and validates it.
func ParseConfig(spec string) (Config, error) {
	name, params, _ := strings.Cut(strings.TrimSpace(spec), ":")
	c := Config{Name: strings.TrimSpace(name), Params: map[string]float64{}}
	for _, kv := range strings.Split(params, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err != nil {
			return c, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy %q: %q is not name=number", spec, kv)
		}
		c.Params[strings.TrimSpace(k)] = f
	}
	return c, c.Validate()
}

// String writes the config in ParseConfig's form.
func (c Config) String() string {
	name := strings.ToLower(strings.TrimSpace(c.Name))
	if name == "" {
		name = "none"
	}
	var parts []string
	for _, k := range sortedKeys(c.Params) {
		parts = append(parts, fmt.Sprintf("%s=%g", k, c.Params[k]))
	}
	if len(parts) == 0 {
		return name
	}
	return name + ":" + strings.Join(parts, ",")
}

// Validate checks a config without building it.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

func (c Config) resolve() (map[string]float64, error) {
	name := strings.ToLower(strings.TrimSpace(c.Name))
	if name == "" {
		name = "none"
	}
	s, ok := registry[name]
	if !ok {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "unknown cache policy %q; policies: %s", c.Name, strings.Join(Names(), ", "))
	}
	out := map[string]float64{}
	for k, p := range s.params {
		out[k] = p.def
	}
	for k, v := range c.Params {
		p, ok := s.params[k]
		if !ok {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy %s has no parameter %q; it takes: %s", name, k, Describe(name))
		}
		if math.IsNaN(v) || v < p.min || v > p.max || (p.integer && v != math.Trunc(v)) {
			kind := "a number"
			if p.integer {
				kind = "an integer"
			}
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cache policy %s: %s must be %s in %g…%g (got %v)", name, k, kind, p.min, p.max, v)
		}
		out[k] = v
	}
	return out, nil
}

// New builds a fresh policy for one request on a model with depth blocks.
func New(c Config, depth int) (Policy, error) {
	p, err := c.resolve()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSpace(c.Name))
	if name == "" {
		name = "none"
	}
	s := registry[name]
	if s.buildCalibrated != nil {
		return s.buildCalibrated(p, depth, c.Calibration)
	}
	return s.build(p, depth), nil
}

// ledger counts units and tracks held memory; policies embed it.
type ledger struct {
	name                       string
	steps                      int
	computed, reused, forecast int
	held, peak                 int64
}

func (l *ledger) hold(delta int64) {
	l.held += delta
	l.peak = max(l.peak, l.held)
}

// swap replaces the feature held in *slot by f (nil releases it), keeping the memory account.
func (l *ledger) swap(slot **model.Feature, f *model.Feature) {
	if *slot != nil {
		l.hold(-(*slot).Bytes())
		(*slot).Drop()
	}
	*slot = f
	if f != nil {
		l.hold(f.Bytes())
	}
}

// residualStack is the block-stack hook of whole-stack policies (MagCache, TeaCache): when skip is set it
// returns x plus the residual kept in *residual; otherwise it runs every block and keeps the new residual.
func (l *ledger) residualStack(depth int, residual **model.Feature, skip func() bool) func(*model.Feature, func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
	return func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		if skip() {
			l.reused += depth
			return x.Add(*residual)
		}
		return residualObserver(depth, func(r *model.Feature) error {
			l.computed += depth
			l.swap(residual, r)
			return nil
		})(x, run)
	}
}

func (l *ledger) Stats() Stats {
	total := l.computed + l.reused + l.forecast
	frac := 1.0
	if total > 0 {
		frac = float64(l.computed) / float64(total)
	}
	return Stats{Policy: l.name, Steps: l.steps, Computed: l.computed, Reused: l.reused, Forecast: l.forecast,
		ComputeFraction: frac, ExtraBytes: l.peak}
}

// none computes everything: the reference every policy is measured against.
type none struct{ ledger }

func (n *none) Begin(s model.Schedule) error { n.steps = s.Steps; return nil }
func (n *none) Eval(_ int, eval func(*model.Hooks) (*model.Feature, error)) (*model.Feature, error) {
	n.computed++
	return eval(nil)
}
func (n *none) End() {}

func init() {
	register("none", spec{params: map[string]param{}, help: "compute every step",
		build: func(map[string]float64, int) Policy { return &none{ledger{name: "none"}} }})
}
