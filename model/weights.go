package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/atomicfile"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// Metadata keys of Cachet's weights files.
const (
	MetaFormat = "cachet.format" // "dit-v1"
	MetaConfig = "cachet.config" // the model Config as JSON
	formatDiT  = "dit-v1"
)

// namedTensors reads every parameter of vs as fp32 safetensors tensors, under prefix.
func namedTensors(vs *nn.VarStore, prefix string, into map[string]safetensors.Tensor) error {
	for name, v := range vs.Variables() {
		shape, err := v.Size()
		if err != nil {
			return err
		}
		vals, err := Float32s(&v)
		if err != nil {
			return fmt.Errorf("model: reading %s: %w", name, err)
		}
		into[prefix+name] = safetensors.FromFloat32(shape, vals)
	}
	return nil
}

// Save writes the model's parameters (fp32) with its config in the file's metadata, atomically.
// extra adds metadata (training step, data, …).
func (m *DiT) Save(path string, extra map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(m.VS, "", f.Tensors); err != nil {
		return err
	}
	cfg, err := json.Marshal(m.Cfg)
	if err != nil {
		return err
	}
	for k, v := range extra {
		f.Metadata[k] = v
	}
	f.Metadata[MetaFormat] = formatDiT
	f.Metadata[MetaConfig] = string(cfg)
	return writeSafetensors(path, f)
}

func writeSafetensors(path string, f safetensors.File) error {
	data, err := safetensors.Marshal(f)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("model: saving: %w", err)
	}
	return nil
}

// ReadWeightsFile decodes a weights file and its model config, with errors a user can act on.
func ReadWeightsFile(path string) (safetensors.File, Config, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f, Config{}, cachet.Errorf(cachet.CodeNotFound, "weights file %s does not exist", path)
		}
		return f, Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s is not a valid safetensors file: %v", path, err)
	}
	if f.Metadata[MetaFormat] != formatDiT {
		return f, Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s is not a Cachet DiT (metadata %s = %q, want %q); convert DiT checkpoints with 'cachet convert dit'", path, MetaFormat, f.Metadata[MetaFormat], formatDiT)
	}
	var cfg Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaConfig]), &cfg); err != nil {
		return f, Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s has an unreadable model config: %v", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return f, Config{}, fmt.Errorf("weights file %s: %w", path, err)
	}
	return f, cfg, nil
}

// Load builds the model a weights file describes and loads its parameters strictly. The VarStore is left
// frozen (inference); NewTrainer unfreezes it to train it further.
func Load(path string, device gotch.Device) (*DiT, safetensors.File, error) {
	f, cfg, err := ReadWeightsFile(path)
	if err != nil {
		return nil, f, err
	}
	m, err := newLoaded(path, f.Tensors, cfg, device)
	return m, f, err
}

// newLoaded builds the model cfg describes and loads tensors (from the weights file path) into it strictly.
func newLoaded(path string, tensors map[string]safetensors.Tensor, cfg Config, device gotch.Device) (*DiT, error) {
	m, err := New(cfg, device)
	if err != nil {
		return nil, err
	}
	if err := loadInto(m.VS, tensors, ""); err != nil {
		m.Close()
		return nil, fmt.Errorf("weights file %s: %w", path, err)
	}
	return m, nil
}

// LoadWithTextPool loads a weights file into a model whose text encoder pools as pool says: the file's own
// pooling, or attention pooling over a mean-pooled file, whose query starts at zero so that the model
// computes exactly what the file's did (the start of training it into attention pooling).
func LoadWithTextPool(path string, device gotch.Device, pool string) (*DiT, error) {
	f, cfg, err := ReadWeightsFile(path)
	if err != nil {
		return nil, err
	}
	switch {
	case pool == cfg.TextPool:
	case cfg.Cond == CondText && cfg.TextPool == "" && pool == TextPoolAttention:
		cfg.TextPool = pool
		tensors := maps.Clone(f.Tensors)
		tensors["text."+poolQueryName] = safetensors.FromFloat32([]int64{int64(cfg.TextWidth), 1}, make([]float32, cfg.TextWidth))
		f.Tensors = tensors
	default:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s pools its text as %q; it cannot become %q (only mean → attention)", path, cfg.TextPool, pool)
	}
	return newLoaded(path, f.Tensors, cfg, device)
}

// loadInto copies tensors[prefix+name] into every parameter of vs. Missing, unexpected and mis-shaped
// tensors are all reported in one error. vs is frozen first (in-place writes to leaves need it).
func loadInto(vs *nn.VarStore, tensors map[string]safetensors.Tensor, prefix string) error {
	if err := setTrainable(vs, false); err != nil {
		return err
	}
	vars := vs.Variables()
	var missing, unexpected, misshaped []string
	for name, v := range vars {
		t, ok := tensors[prefix+name]
		if !ok {
			missing = append(missing, prefix+name)
			continue
		}
		want, err := v.Size()
		if err != nil {
			return err
		}
		if fmt.Sprint(want) != fmt.Sprint(t.Shape) {
			misshaped = append(misshaped, fmt.Sprintf("%s%s: file %v, model %v", prefix, name, t.Shape, want))
		}
	}
	for name := range tensors {
		if strings.HasPrefix(name, prefix) {
			if _, ok := vars[strings.TrimPrefix(name, prefix)]; !ok {
				unexpected = append(unexpected, name)
			}
		}
	}
	if len(missing)+len(unexpected)+len(misshaped) > 0 {
		sort.Strings(missing)
		sort.Strings(unexpected)
		sort.Strings(misshaped)
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing tensors: "+strings.Join(missing, ", "))
		}
		if len(unexpected) > 0 {
			parts = append(parts, "unexpected tensors: "+strings.Join(unexpected, ", "))
		}
		if len(misshaped) > 0 {
			parts = append(parts, "mis-shaped tensors: "+strings.Join(misshaped, "; "))
		}
		return cachet.Errorf(cachet.CodeInvalidArgument, "weights do not match the model: %s", strings.Join(parts, "; "))
	}
	for name, v := range vars {
		t := tensors[prefix+name]
		vals, err := t.Float32s()
		if err != nil {
			return fmt.Errorf("%s%s: %w", prefix, name, err)
		}
		if err := setTensor(&v, vals, t.Shape); err != nil {
			return fmt.Errorf("%s%s: %w", prefix, name, err)
		}
	}
	return nil
}

// setTensor overwrites dst (a frozen parameter) with vals.
func setTensor(dst *ts.Tensor, vals []float32, shape []int64) error {
	dev, err := dst.Device()
	if err != nil {
		return err
	}
	src, err := FromFloat32s(vals, shape, dev)
	if err != nil {
		return err
	}
	defer src.Drop()
	if err := dst.Zero_(); err != nil {
		return err
	}
	return dst.Add_(src)
}

// LoadWeights overwrites this model's parameters from a weights file of the same config.
func (m *DiT) LoadWeights(path string) error {
	f, cfg, err := ReadWeightsFile(path)
	if err != nil {
		return err
	}
	a, _ := json.Marshal(cfg)
	b, _ := json.Marshal(m.Cfg)
	if string(a) != string(b) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s holds a different model (%s) than this one (%s)", path, cfg, m.Cfg)
	}
	return loadInto(m.VS, f.Tensors, "")
}
