package model

import (
	"fmt"

	"github.com/cachetlab/cachet"
)

// EvalInput is one batched denoiser evaluation, in Go types: x [B, C, H, W] at model times T (one per row)
// under per-row conditions (Prompts for text models, Labels for label models; Null rows take the null
// condition).
type EvalInput struct {
	X       []float32
	T       []float64
	Prompts []string
	Labels  []int
	Null    []bool
}

// Evaluate runs the denoiser once and returns its raw output [B, OutChannels, H, W]. Hooks may be nil.
// It must run on the model's worker.
func (m *DiT) Evaluate(in EvalInput, h *Hooks) ([]float32, error) {
	n := len(in.T)
	if n == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "nothing to evaluate")
	}
	per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
	if len(in.X) != n*per {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "x has %d values, want %d×%d", len(in.X), n, per)
	}
	null := in.Null
	if null == nil {
		null = make([]bool, n)
	}
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	x := o.keep(FromFloat32s(in.X, []int64{int64(n), int64(m.Cfg.Channels), int64(m.Cfg.ImageSize), int64(m.Cfg.ImageSize)}, m.Device))
	y := m.trainConditions(o, &SampleRequest{Prompts: in.Prompts, Labels: in.Labels}, null)
	out := m.forward(o, x, m.modulate(o, m.conditionVector(o, in.T, y)), h)
	if o.err != nil {
		return nil, fmt.Errorf("model: evaluate: %w", o.err)
	}
	return Float32s(out)
}
