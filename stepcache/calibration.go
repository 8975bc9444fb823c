package stepcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cachetlab/cachet/internal/atomicfile"
)

// Calibrations are a model's step-cache profiles, kept next to its weights: per-policy values (policy
// name → MagCache's ratios, TeaCache's polynomial) and, under "speed", the speed presets measured on it.
type Calibrations struct {
	Profiles map[string][]float64
	Speeds   map[string]SpeedPoint
}

// SpeedPoint is a speed preset as measured on the service path (`cachet calibrate speeds`): the fastest
// setting keeping the preset's PSNR in every group, with the lowest PSNR and speed-up over the groups.
type SpeedPoint struct {
	Steps   int     `json:"steps"`
	Cache   string  `json:"cache"` // ParseConfig's form
	PSNR    float64 `json:"psnr_db"`
	SpeedUp float64 `json:"speed_up"`
	Report  string  `json:"report"` // the report it came from
}

// Config is the point's step-cache policy.
func (p SpeedPoint) Config() (Config, error) { return ParseConfig(p.Cache) }

const speedKey = "speed"

func (c Calibrations) MarshalJSON() ([]byte, error) {
	all := map[string]any{}
	for k, v := range c.Profiles {
		all[k] = v
	}
	if len(c.Speeds) > 0 {
		all[speedKey] = c.Speeds
	}
	return json.Marshal(all)
}

func (c *Calibrations) UnmarshalJSON(data []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	*c = Calibrations{Profiles: map[string][]float64{}}
	for k, raw := range all {
		var err error
		if k == speedKey {
			err = json.Unmarshal(raw, &c.Speeds)
		} else {
			var v []float64
			err = json.Unmarshal(raw, &v)
			c.Profiles[k] = v
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	for name, p := range c.Speeds {
		if _, err := p.Config(); err != nil || p.Steps < 1 {
			return fmt.Errorf("speed %s: steps %d, cache %q: %v", name, p.Steps, p.Cache, err)
		}
	}
	return nil
}

// SetProfile stores a policy's profile.
func (c *Calibrations) SetProfile(policy string, values []float64) {
	if c.Profiles == nil {
		c.Profiles = map[string][]float64{}
	}
	c.Profiles[policy] = values
}

// CalibrationPath is where a weights file's calibrations live: base.safetensors → base.calibration.json.
func CalibrationPath(weights string) string {
	return strings.TrimSuffix(weights, filepath.Ext(weights)) + ".calibration.json"
}

// LoadCalibrations reads path; a missing file is an empty set.
func LoadCalibrations(path string) (Calibrations, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Calibrations{Profiles: map[string][]float64{}}, nil
	}
	if err != nil {
		return Calibrations{}, fmt.Errorf("stepcache: calibrations: %w", err)
	}
	var c Calibrations
	if err := json.Unmarshal(data, &c); err != nil {
		return Calibrations{}, fmt.Errorf("stepcache: calibrations %s: %w", path, err)
	}
	return c, nil
}

// Save writes the calibrations to path atomically.
func (c Calibrations) Save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, append(data, '\n')); err != nil {
		return fmt.Errorf("stepcache: saving calibrations: %w", err)
	}
	return nil
}

// Apply fills cfg.Calibration from the set when the policy needs one and the config has none.
func (c Calibrations) Apply(cfg Config) Config {
	name := strings.ToLower(strings.TrimSpace(cfg.Name))
	if s, ok := registry[name]; ok && s.buildCalibrated != nil && len(cfg.Calibration) == 0 {
		cfg.Calibration = c.Profiles[name]
	}
	return cfg
}
