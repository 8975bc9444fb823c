package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet/internal/safetensors"
)

// AdapterBatch is a flow-matching batch whose rows each come with a reference.
type AdapterBatch struct {
	TrainBatch
	// RefTokens is the number of reference tokens per row. Refs[i] holds, for adapter block Cfg.Blocks[i],
	// rows·RefTokens·Width values: row r's reference tokens (input hidden states of that block) at
	// [r·RefTokens·Width, (r+1)·RefTokens·Width).
	RefTokens int
	Refs      [][]float32
	// NoRef rows train the null reference (m = 0); their Refs values are ignored.
	NoRef []bool
}

// AdapterTrainer fits adapters on a frozen base model with the flow-matching loss, AdamW and an EMA of the
// adapter weights. Only the adapters' VarStore is trained.
type AdapterTrainer struct {
	Base     *DiT
	Adapters *Adapters
	EMA      *Adapters // nil when EMA is off
	Opt      *AdamW
	lr       float64
	decay    float64
}

// NewAdapterTrainer freezes base and prepares AdamW over a's parameters.
func NewAdapterTrainer(base *DiT, a *Adapters, cfg TrainerConfig) (*AdapterTrainer, error) {
	if err := sameConfig(a.Base, base.Cfg); err != nil {
		return nil, err
	}
	if err := setTrainable(base.VS, false); err != nil {
		return nil, err
	}
	if err := setTrainable(a.VS, true); err != nil {
		return nil, err
	}
	opt, err := NewAdamW(a.VS, cfg.Beta1, cfg.Beta2, 1e-8, cfg.WeightDecay)
	if err != nil {
		return nil, fmt.Errorf("model: optimizer: %w", err)
	}
	t := &AdapterTrainer{Base: base, Adapters: a, Opt: opt, lr: cfg.LR, decay: cfg.EMADecay}
	if cfg.EMADecay > 0 {
		ema, err := NewAdapters(a.Base, a.Cfg, a.Device)
		if err != nil {
			opt.Close()
			return nil, err
		}
		if err := copyParams(ema.VS, a.VS); err != nil {
			opt.Close()
			ema.Close()
			return nil, fmt.Errorf("model: EMA copy: %w", err)
		}
		t.EMA = ema
	}
	return t, nil
}

func sameConfig(a, b Config) error {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) != string(y) {
		return fmt.Errorf("model: the adapters were made for %s, not this %s", a, b)
	}
	return nil
}

// SetLR sets the learning rate for the next steps.
func (t *AdapterTrainer) SetLR(lr float64) { t.lr = lr }

// Close frees the optimizer state and the EMA copy (not the base or the adapters).
func (t *AdapterTrainer) Close() {
	t.Opt.Close()
	if t.EMA != nil {
		t.EMA.Close()
	}
}

// Step runs one forward/backward/AdamW step on the adapters and returns the batch loss. It must run on a
// worker with gradients on.
func (t *AdapterTrainer) Step(b AdapterBatch, clip float64) (float64, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	loss := adapterLoss(o, t.Base, t.Adapters, b)
	if o.err != nil {
		return 0, o.err
	}
	if err := t.Opt.ZeroGrad(); err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, fmt.Errorf("model: backward: %w", err)
	}
	if clip > 0 {
		if err := clipGradNorm(t.Adapters.VS, clip); err != nil {
			return 0, fmt.Errorf("model: grad clip: %w", err)
		}
	}
	if err := t.Opt.Step(t.lr); err != nil {
		return 0, fmt.Errorf("model: optimizer step: %w", err)
	}
	v, err := loss.Float64Value([]int64{})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, fmt.Errorf("model: loss is %v; lower the learning rate", v)
	}
	if t.EMA != nil {
		if err := emaUpdate(t.EMA.VS, t.Adapters.VS, t.decay); err != nil {
			return v, err
		}
	}
	return v, nil
}

// AdapterFlowLoss evaluates the loss of base + a on b without tracking gradients (validation).
func AdapterFlowLoss(base *DiT, a *Adapters, b AdapterBatch) (float64, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	prev, err := setGradEnabled(false)
	if err != nil {
		return 0, err
	}
	defer setGradEnabled(prev)
	loss := adapterLoss(o, base, a, b)
	if o.err != nil {
		return 0, o.err
	}
	return loss.Float64Value([]int64{})
}

// adapterLoss is the flow loss of the base with the adapters injected, each row seeing its own reference.
func adapterLoss(o *ops, base *DiT, a *Adapters, b AdapterBatch) *ts.Tensor {
	n := len(b.T)
	if len(b.Refs) != len(a.Cfg.Blocks) || b.RefTokens <= 0 {
		o.err = fmt.Errorf("model: adapter batch has %d reference blocks of %d tokens; the adapters need %d", len(b.Refs), b.RefTokens, len(a.Cfg.Blocks))
		return nil
	}
	kvs := map[int]refKV{}
	for i, blk := range a.Cfg.Blocks {
		ref := o.keep(FromFloat32s(b.Refs[i], []int64{int64(n), int64(b.RefTokens), int64(a.Base.Width)}, a.Device))
		kvs[blk] = a.projectReference(o, blk, ref)
	}
	keep := make([]float32, n)
	for i := range keep {
		if b.NoRef == nil || !b.NoRef[i] {
			keep[i] = 1
		}
	}
	mask := o.keep(FromFloat32s(keep, []int64{int64(n), 1, 1}, a.Device))
	if o.err != nil {
		return nil
	}
	hooks := &Hooks{InjectBlocks: a.Cfg.Blocks, InjectAttention: func(block int, h, attn *Feature) (*Feature, error) {
		var s Scope
		defer s.Drop()
		lo := newOps(&s)
		out := a.apply(lo, block, h.t, attn.t, kvs[block], n, mask)
		if lo.err != nil {
			return nil, lo.err
		}
		return &Feature{t: s.Release(out)}, nil
	}}
	return base.flowLossWith(o, b.TrainBatch, hooks)
}

// Adapter checkpoints: the adapters ("adapter."), their EMA ("ema."), the optimizer's moments ("adam.")
// and metadata; the base is not in it (it is frozen and named by the caller's metadata).
const metaAdapterCheckpoint = "cachet.adapter_checkpoint"

// SaveCheckpoint writes the adapter training state to path atomically.
func (t *AdapterTrainer) SaveCheckpoint(path string, meta map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(t.Adapters.VS, "adapter.", f.Tensors); err != nil {
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
	ac, bc, err := t.Adapters.configJSON()
	if err != nil {
		return err
	}
	for k, v := range meta {
		f.Metadata[k] = v
	}
	f.Metadata[metaAdapterConfig] = ac
	f.Metadata[MetaConfig] = bc
	f.Metadata[metaAdapterCheckpoint] = "v1"
	f.Metadata[metaAdamSteps] = strconv.FormatInt(t.Opt.Steps, 10)
	return writeSafetensors(path, f)
}

// LoadCheckpoint restores a state saved by SaveCheckpoint (same adapter and base configs) and returns its
// metadata.
func (t *AdapterTrainer) LoadCheckpoint(path string) (map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if f.Metadata[metaAdapterCheckpoint] != "v1" {
		return nil, fmt.Errorf("checkpoint %s: not a Cachet adapter training checkpoint", path)
	}
	ac, bc, err := t.Adapters.configJSON()
	if err != nil {
		return nil, err
	}
	if f.Metadata[metaAdapterConfig] != ac || f.Metadata[MetaConfig] != bc {
		return nil, fmt.Errorf("checkpoint %s was made for other adapters or another base:\n  file:  %s %s\n  now:   %s %s",
			path, f.Metadata[metaAdapterConfig], f.Metadata[MetaConfig], ac, bc)
	}
	if err := loadInto(t.Adapters.VS, f.Tensors, "adapter."); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := setTrainable(t.Adapters.VS, true); err != nil {
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
