package generate

import (
	"fmt"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/stepcache"
)

// resolveSpeed turns a request's speed preset into its steps and policy, from the model's calibration
// file. A request naming no speed, steps or policy gets cachet.DefaultSpeed where the model has one
// (otherwise cachet.DefaultSteps and the default policy, as Validate fills them).
func (s *Service) resolveSpeed(req *Request) error {
	name := strings.ToLower(strings.TrimSpace(req.Speed))
	chosen := req.Steps != 0 || strings.TrimSpace(req.Cache.Name) != ""
	if name == "" {
		if _, ok := s.opts.Calibrations.Speeds[cachet.DefaultSpeed]; chosen || !ok {
			return nil
		}
		name = cachet.DefaultSpeed
	}
	known := false
	for _, p := range cachet.SpeedPresets {
		known = known || p.Name == name
	}
	if !known {
		return cachet.Errorf(cachet.CodeInvalidArgument, "speed must be one of %s (got %q)", strings.Join(cachet.SpeedNames(), ", "), req.Speed)
	}
	p, ok := s.opts.Calibrations.Speeds[name]
	if !ok {
		return cachet.Errorf(cachet.CodeInvalidArgument, "this model has no measured speed presets (its calibration file names none; `cachet calibrate speeds` writes them): give steps instead")
	}
	cfg, err := p.Config()
	if err != nil {
		return fmt.Errorf("generate: speed %s of the calibration file: %w", name, err)
	}
	resolved := req.Steps == p.Steps && req.Cache.String() == cfg.String() // validated before (a queued job)
	if chosen && !resolved {
		return cachet.Errorf(cachet.CodeInvalidArgument, "speed %q chooses the steps and the cache policy: give speed, or steps and cache, not both", name)
	}
	req.Speed, req.Steps, req.Cache = name, p.Steps, cfg
	return nil
}

// SpeedPresets are the catalog's presets: the model's measured speed presets, slowest first; without
// them, one preset of the default steps.
func SpeedPresets(speeds map[string]stepcache.SpeedPoint) []cachet.Preset {
	var out []cachet.Preset
	for _, sp := range cachet.SpeedPresets {
		p, ok := speeds[sp.Name]
		if !ok {
			continue
		}
		cfg, err := p.Config()
		if err != nil {
			continue
		}
		label := strings.ToUpper(sp.Name[:1]) + sp.Name[1:]
		how := fmt.Sprintf("%d steps", p.Steps)
		if cfg.String() != "none" {
			how += ", " + cfg.String()
		}
		out = append(out, cachet.Preset{Name: sp.Name, Label: label, Steps: p.Steps,
			Cache: cachet.CachePolicy{Name: cfg.Name, Params: cfg.Params},
			Note:  fmt.Sprintf("%s: %.1f× faster than 50 steps, ≥ %.0f dB PSNR to them (%.1f measured)", how, p.SpeedUp, sp.MinPSNR, p.PSNR)})
	}
	if len(out) == 0 {
		out = append(out, cachet.Preset{Name: cachet.DefaultSpeed, Label: "Balanced", Steps: cachet.DefaultSteps,
			Cache: cachet.CachePolicy{Name: cachet.DefaultCachePolicy}, Note: fmt.Sprintf("%d steps (this model has no measured speed presets)", cachet.DefaultSteps)})
	}
	return out
}
