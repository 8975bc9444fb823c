package model

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet/internal/safetensors"
)

// Checkpoint layout: one safetensors file with the model ("model."), its EMA ("ema."), the optimizer's
// moments ("adam.m.", "adam.v.") and metadata (config, optimizer step, caller's fields).
const (
	metaCheckpoint = "cachet.checkpoint"
	metaAdamSteps  = "cachet.adam_steps"
)

// SaveCheckpoint writes the whole training state to path atomically.
func (t *Trainer) SaveCheckpoint(path string, meta map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(t.Model.VS, "model.", f.Tensors); err != nil {
		return err
	}
	if t.EMA != nil {
		if err := namedTensors(t.EMA.VS, "ema.", f.Tensors); err != nil {
			return err
		}
	}
	for name, v := range t.Opt.state() {
		shape, err := v.Size()
		if err != nil {
			return err
		}
		vals, err := Float32s(v)
		if err != nil {
			return err
		}
		f.Tensors["adam."+name] = safetensors.FromFloat32(shape, vals)
	}
	cfg, err := json.Marshal(t.Model.Cfg)
	if err != nil {
		return err
	}
	for k, v := range meta {
		f.Metadata[k] = v
	}
	f.Metadata[MetaConfig] = string(cfg)
	f.Metadata[metaCheckpoint] = "v1"
	f.Metadata[metaAdamSteps] = strconv.FormatInt(t.Opt.Steps, 10)
	return writeSafetensors(path, f)
}

// LoadCheckpoint restores the training state saved by SaveCheckpoint into this trainer (same model
// config) and returns the checkpoint's metadata.
func (t *Trainer) LoadCheckpoint(path string) (map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if f.Metadata[metaCheckpoint] != "v1" {
		return nil, fmt.Errorf("checkpoint %s: not a Cachet training checkpoint", path)
	}
	want, _ := json.Marshal(t.Model.Cfg)
	if f.Metadata[MetaConfig] != string(want) {
		return nil, fmt.Errorf("checkpoint %s was made for another model config:\n  file:  %s\n  model: %s", path, f.Metadata[MetaConfig], want)
	}
	if err := loadInto(t.Model.VS, f.Tensors, "model."); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := setTrainable(t.Model.VS, true); err != nil {
		return nil, err
	}
	if t.EMA != nil {
		if err := loadInto(t.EMA.VS, f.Tensors, "ema."); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	for name, dst := range t.Opt.state() {
		src, ok := f.Tensors["adam."+name]
		if !ok {
			return nil, fmt.Errorf("checkpoint %s: optimizer state adam.%s missing", path, name)
		}
		vals, err := src.Float32s()
		if err != nil {
			return nil, err
		}
		if err := setPlain(dst, vals, src.Shape); err != nil {
			return nil, fmt.Errorf("checkpoint %s: adam.%s: %w", path, name, err)
		}
	}
	steps, err := strconv.ParseInt(f.Metadata[metaAdamSteps], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: bad %s: %w", path, metaAdamSteps, err)
	}
	t.Opt.Steps = steps
	return f.Metadata, nil
}

// setPlain overwrites a tensor that does not track gradients.
func setPlain(dst *ts.Tensor, vals []float32, shape []int64) error {
	return setTensor(dst, vals, shape)
}
