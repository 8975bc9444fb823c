package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
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
	fit
	Base     *DiT
	Adapters *Adapters
	EMA      *Adapters // nil when EMA is off
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
	ema, f, err := fitWithEMA(a.VS, cfg, func() (*Adapters, *nn.VarStore, error) {
		ema, err := NewAdapters(a.Base, a.Cfg, a.Device)
		if err != nil {
			return nil, nil, err
		}
		return ema, ema.VS, nil
	})
	if err != nil {
		return nil, err
	}
	return &AdapterTrainer{fit: f, Base: base, Adapters: a, EMA: ema}, nil
}

func sameConfig(a, b Config) error {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) != string(y) {
		return fmt.Errorf("model: the adapters were made for %s, not this %s", a, b)
	}
	return nil
}

// Close frees the optimizer state and the EMA copy (not the base or the adapters).
func (t *AdapterTrainer) Close() {
	t.close()
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
	return t.step(loss, clip)
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

// An adapter checkpoint holds the adapters under "adapter." (fit's layout), not the base: it is frozen and
// named by the caller's metadata. It is identified by metaAdapterCheckpoint and both configs.
const metaAdapterCheckpoint = "cachet.adapter_checkpoint"

// SaveCheckpoint writes the adapter training state to path atomically.
func (t *AdapterTrainer) SaveCheckpoint(path string, meta map[string]string) error {
	ac, bc, err := t.Adapters.configJSON()
	if err != nil {
		return err
	}
	m := maps.Clone(meta)
	if m == nil {
		m = map[string]string{}
	}
	m[metaAdapterConfig] = ac
	m[MetaConfig] = bc
	m[metaAdapterCheckpoint] = "v1"
	return t.save(path, "adapter.", m)
}

// LoadCheckpoint restores a state saved by SaveCheckpoint (same adapter and base configs) and returns its
// metadata.
func (t *AdapterTrainer) LoadCheckpoint(path string) (map[string]string, error) {
	ac, bc, err := t.Adapters.configJSON()
	if err != nil {
		return nil, err
	}
	return t.load(path, "adapter.", func(meta map[string]string) error {
		if meta[metaAdapterCheckpoint] != "v1" {
			return errors.New("not a Cachet adapter training checkpoint")
		}
		if meta[metaAdapterConfig] != ac || meta[MetaConfig] != bc {
			return fmt.Errorf("made for other adapters or another base:\n  file:  %s %s\n  now:   %s %s",
				meta[metaAdapterConfig], meta[MetaConfig], ac, bc)
		}
		return nil
	})
}
