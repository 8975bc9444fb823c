package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
)

// A base training checkpoint holds the model under "model." (fit's layout) and is identified by
// metaCheckpoint and the model config.
const metaCheckpoint = "cachet.checkpoint"

// SaveCheckpoint writes the whole training state to path atomically.
func (t *Trainer) SaveCheckpoint(path string, meta map[string]string) error {
	cfg, err := json.Marshal(t.Model.Cfg)
	if err != nil {
		return err
	}
	m := maps.Clone(meta)
	if m == nil {
		m = map[string]string{}
	}
	m[MetaConfig] = string(cfg)
	m[metaCheckpoint] = "v1"
	return t.save(path, "model.", m)
}

// LoadCheckpoint restores the training state saved by SaveCheckpoint into this trainer (same model
// config) and returns the checkpoint's metadata.
func (t *Trainer) LoadCheckpoint(path string) (map[string]string, error) {
	want, err := json.Marshal(t.Model.Cfg)
	if err != nil {
		return nil, err
	}
	return t.load(path, "model.", func(meta map[string]string) error {
		if meta[metaCheckpoint] != "v1" {
			return errors.New("not a Cachet training checkpoint")
		}
		if meta[MetaConfig] != string(want) {
			return fmt.Errorf("made for another model config:\n  file:  %s\n  model: %s", meta[MetaConfig], want)
		}
		return nil
	})
}
