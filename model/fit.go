package model

import (
	"fmt"
	"math"
	"strconv"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet/internal/safetensors"
)

// fit is the optimisation state every trainer shares: the trained parameters, their EMA copy, AdamW and
// the learning rate. Trainer (the whole DiT) and AdapterTrainer (adapters on a frozen base) differ only in
// their loss and in what identifies their checkpoints.
type fit struct {
	Opt   *AdamW
	vs    *nn.VarStore // the trained parameters
	ema   *nn.VarStore // nil when EMA is off
	lr    float64
	decay float64
}

// fitWithEMA makes the EMA copy with newCopy when cfg asks for one, then the optimiser over vs; the copy is
// closed again when the optimiser cannot be made.
func fitWithEMA[T interface{ Close() }](vs *nn.VarStore, cfg TrainerConfig, newCopy func() (T, *nn.VarStore, error)) (T, fit, error) {
	var ema T
	var emaVS *nn.VarStore
	if cfg.EMADecay > 0 {
		var err error
		if ema, emaVS, err = newCopy(); err != nil {
			return ema, fit{}, err
		}
	}
	f, err := newFit(vs, emaVS, cfg)
	if err != nil && emaVS != nil {
		ema.Close()
		var none T
		return none, fit{}, err
	}
	return ema, f, err
}

func newFit(vs, ema *nn.VarStore, cfg TrainerConfig) (fit, error) {
	opt, err := NewAdamW(vs, cfg.Beta1, cfg.Beta2, 1e-8, cfg.WeightDecay)
	if err != nil {
		return fit{}, fmt.Errorf("model: optimizer: %w", err)
	}
	if ema != nil {
		if err := copyParams(ema, vs); err != nil {
			opt.Close()
			return fit{}, fmt.Errorf("model: EMA copy: %w", err)
		}
	}
	return fit{Opt: opt, vs: vs, ema: ema, lr: cfg.LR, decay: cfg.EMADecay}, nil
}

// SetLR sets the learning rate for the next steps (schedules live with the caller).
func (f *fit) SetLR(lr float64) { f.lr = lr }

// step back-propagates loss, clips the global gradient norm to clip (0: off), takes an AdamW step and
// updates the EMA; it returns the loss value.
func (f *fit) step(loss *ts.Tensor, clip float64) (float64, error) {
	if err := f.Opt.ZeroGrad(); err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, fmt.Errorf("model: backward: %w", err)
	}
	if clip > 0 {
		if err := clipGradNorm(f.vs, clip); err != nil {
			return 0, fmt.Errorf("model: grad clip: %w", err)
		}
	}
	if err := f.Opt.Step(f.lr); err != nil {
		return 0, fmt.Errorf("model: optimizer step: %w", err)
	}
	v, err := loss.Float64Value([]int64{})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, fmt.Errorf("model: loss is %v; lower the learning rate", v)
	}
	if f.ema != nil {
		if err := emaUpdate(f.ema, f.vs, f.decay); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Checkpoint layout: one safetensors file with the trained parameters (under the trainer's prefix), their
// EMA ("ema."), the optimizer's moments ("adam.") and metadata (the trainer's identity, the optimizer step,
// the caller's fields).
const metaAdamSteps = "cachet.adam_steps"

// save writes the training state to path atomically; meta holds the caller's fields and the trainer's
// identity.
func (f *fit) save(path, prefix string, meta map[string]string) error {
	file := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(f.vs, prefix, file.Tensors); err != nil {
		return err
	}
	if f.ema != nil {
		if err := namedTensors(f.ema, "ema.", file.Tensors); err != nil {
			return err
		}
	}
	for name, v := range f.Opt.state() {
		shape, err := v.Size()
		if err != nil {
			return err
		}
		vals, err := Float32s(v)
		if err != nil {
			return err
		}
		file.Tensors["adam."+name] = safetensors.FromFloat32(shape, vals)
	}
	for k, v := range meta {
		file.Metadata[k] = v
	}
	file.Metadata[metaAdamSteps] = strconv.FormatInt(f.Opt.Steps, 10)
	return writeSafetensors(path, file)
}

// load restores a state written by save, after verify accepts the file's metadata, and returns that
// metadata.
func (f *fit) load(path, prefix string, verify func(meta map[string]string) error) (map[string]string, error) {
	file, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := verify(file.Metadata); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := loadInto(f.vs, file.Tensors, prefix); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := setTrainable(f.vs, true); err != nil {
		return nil, err
	}
	if f.ema != nil {
		if err := loadInto(f.ema, file.Tensors, "ema."); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	for name, dst := range f.Opt.state() {
		src, ok := file.Tensors["adam."+name]
		if !ok {
			return nil, fmt.Errorf("checkpoint %s: optimizer state adam.%s missing", path, name)
		}
		vals, err := src.Float32s()
		if err != nil {
			return nil, err
		}
		if err := setTensor(dst, vals, src.Shape); err != nil {
			return nil, fmt.Errorf("checkpoint %s: adam.%s: %w", path, name, err)
		}
	}
	steps, err := strconv.ParseInt(file.Metadata[metaAdamSteps], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: bad %s: %w", path, metaAdamSteps, err)
	}
	f.Opt.Steps = steps
	return file.Metadata, nil
}

// close frees the optimizer state.
func (f *fit) close() { f.Opt.Close() }
