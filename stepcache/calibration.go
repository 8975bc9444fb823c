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

// Calibrations are a model's per-policy profiles (policy name → values), kept next to its weights.
type Calibrations map[string][]float64

// CalibrationPath is where a weights file's calibrations live: base.safetensors → base.calibration.json.
func CalibrationPath(weights string) string {
	return strings.TrimSuffix(weights, filepath.Ext(weights)) + ".calibration.json"
}

// LoadCalibrations reads path; a missing file is an empty set.
func LoadCalibrations(path string) (Calibrations, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Calibrations{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stepcache: calibrations: %w", err)
	}
	var c Calibrations
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("stepcache: calibrations %s: %w", path, err)
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
		cfg.Calibration = c[name]
	}
	return cfg
}
