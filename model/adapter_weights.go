package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// Metadata of adapter weights files: the format, the adapter config and (under MetaConfig) the config of
// the base model they were trained on.
const (
	metaAdapterConfig = "cachet.adapter_config"
	formatAdapters    = "dreamcache-adapters-v1"
)

// Save writes the adapters' parameters (fp32) with both configs in the metadata, atomically. extra adds
// metadata (the base model's id, the reference time, training facts).
func (a *Adapters) Save(path string, extra map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(a.VS, "", f.Tensors); err != nil {
		return err
	}
	ac, bc, err := a.configJSON()
	if err != nil {
		return err
	}
	for k, v := range extra {
		f.Metadata[k] = v
	}
	f.Metadata[MetaFormat] = formatAdapters
	f.Metadata[metaAdapterConfig] = ac
	f.Metadata[MetaConfig] = bc
	return writeSafetensors(path, f)
}

// LoadAdapters reads an adapter weights file strictly (every tensor present and shaped as its config
// says, nothing extra) for a base model of config base; a file made for another base shape is refused.
// The parameters are frozen (inference). It returns the file's metadata.
func LoadAdapters(path string, base Config, device gotch.Device) (*Adapters, map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, cachet.Errorf(cachet.CodeNotFound, "adapter weights %s do not exist; train them with 'cachet train adapters'", path)
		}
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s are not a valid safetensors file: %v", path, err)
	}
	if f.Metadata[MetaFormat] != formatAdapters {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a Cachet adapter file (metadata %s = %q, want %q)", path, MetaFormat, f.Metadata[MetaFormat], formatAdapters)
	}
	var cfg AdapterConfig
	if err := json.Unmarshal([]byte(f.Metadata[metaAdapterConfig]), &cfg); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have an unreadable adapter config: %v", path, err)
	}
	var trainedOn Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaConfig]), &trainedOn); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have an unreadable base config: %v", path, err)
	}
	if err := sameConfig(trainedOn, base); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s were trained on a %s, not this %s; retrain them with 'cachet train adapters'", path, trainedOn, base)
	}
	a, err := NewAdapters(base, cfg, device)
	if err != nil {
		return nil, nil, fmt.Errorf("adapter weights %s: %w", path, err)
	}
	if err := loadInto(a.VS, f.Tensors, ""); err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("adapter weights %s: %w", path, err)
	}
	return a, f.Metadata, nil
}
